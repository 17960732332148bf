"""A private temporary folder per CLI command.

Everything a command writes to temporary files -- deploykit itself, onnxruntime, OpenVINO, a
toolchain subprocess -- goes into ``$TMPDIR/deploykit-<pid>-XXXXXXXX/`` (``tempfile.tempdir`` and
``TMPDIR`` point there while the command runs). The folder is removed when the command ends in any
way Python sees (success, error, SIGINT/SIGTERM/SIGHUP); after a SIGKILL or a crash the next
command removes it (its lock is free and its pid gone, :mod:`deploykit.locks`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from deploykit import locks, signals

PREFIX = "deploykit-"
PATTERN = locks.pid_pattern(PREFIX, "")


@contextlib.contextmanager
def private_tempdir() -> Iterator[Path | None]:
    """Point ``tempfile`` (and ``TMPDIR`` for subprocesses) at a fresh locked folder.

    Yields ``None`` when the system temporary folder cannot be used; whatever then fails to write
    a temporary file reports it with its own error.
    """
    base = tempfile.gettempdir()
    locks.remove_stale(base, PATTERN)
    try:
        path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=base))
    except OSError:
        yield None
        return
    fd = locks.hold(path)
    saved_tempdir, saved_env = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir = str(path)
    os.environ["TMPDIR"] = str(path)
    try:
        yield path
    finally:
        tempfile.tempdir = saved_tempdir
        if saved_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_env
        with signals.deferred():
            shutil.rmtree(path, ignore_errors=True)
            locks.release(fd)
