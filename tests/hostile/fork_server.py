"""A preloaded ``deploykit`` process that forks one child per command, for the hostile suite.

Starting Python and importing deploykit's dependencies (onnx, onnx_ir, numpy, typer, rich) takes
2-3 s per command on this machine; the suite runs hundreds of commands. This server imports
``deploykit.cli.app`` once and forks a child per request: the child is a real process with its own
pid, working folder, environment, stdin/stdout/stderr files and exit status, and runs exactly what
the ``deploykit`` console script runs (``main()``). Only the start-up (imports before a command
runs) is not exercised here; test_signals.py covers it with real processes.

Protocol (JSON lines): request ``{"argv", "cwd", "env", "stdout", "stderr"}`` -> reply
``{"pid"}`` at once, then ``{"pid", "status"}`` when the child ends (status like
``subprocess``: the exit code, or minus the signal that killed it).
"""

from __future__ import annotations

import json
import os
import sys


def _child(req: dict) -> None:
    try:
        os.setpgid(0, 0)  # its own group, like a command started from a shell
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        import deploykit

        deploykit.offline_runtimes()  # what importing deploykit does in a fresh process, with this environment
        import tempfile

        tempfile.tempdir = None  # re-read TMPDIR
        sys.dont_write_bytecode = bool(req["env"].get("PYTHONDONTWRITEBYTECODE"))
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, path in ((1, req["stdout"]), (2, req["stderr"])):
            f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(f, fd)
            os.close(f)
        sys.argv = ["deploykit", *req["argv"]]
        from deploykit.cli.app import main

        code = 0
        try:
            main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    except BaseException:  # noqa: BLE001 - the harness sees the traceback in stderr
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        os._exit(99)


def serve() -> None:
    import deploykit.cli.app  # noqa: F401 - the preload

    out = sys.stdout
    for line in sys.stdin:
        req = json.loads(line)
        out.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(req)
        out.write(json.dumps({"pid": pid}) + "\n")
        out.flush()
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        out.write(json.dumps({"pid": pid, "status": code}) + "\n")
        out.flush()


if __name__ == "__main__":
    serve()
