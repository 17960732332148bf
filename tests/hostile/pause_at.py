"""Run deploykit and stop inside one build stage, for the signal cases.

    python pause_at.py STAGE READY_FILE deploykit-args...

When the build enters the first stage whose name starts with STAGE, READY_FILE is created and the
process sleeps there until a signal arrives; the test then sends SIGINT/SIGTERM/SIGHUP/SIGKILL.
Nothing in deploykit is changed but the progress reporter's ``stage`` (test code only).
"""

import contextlib
import sys
import time

from deploykit.signals import exit_on_signal

exit_on_signal()

import deploykit.cli.common as common  # noqa: E402

STAGE, READY, ARGS = sys.argv[1], sys.argv[2], sys.argv[3:]
_stage = common.RichReporter.stage


@contextlib.contextmanager
def _paused_stage(self, name):
    with _stage(self, name):
        if name.startswith(STAGE):
            with open(READY, "w"):
                pass
            while True:  # until a signal ends it
                time.sleep(0.05)
        yield


common.RichReporter.stage = _paused_stage
sys.argv = ["deploykit", *ARGS]

from deploykit.cli.app import main  # noqa: E402

main()
