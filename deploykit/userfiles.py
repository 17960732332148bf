"""Files a user names on the command line (model, calibration data, input arrays): checked to be
regular, readable files before anything opens them.

Opening ``/dev/zero`` reads until memory runs out, a FIFO blocks forever, a folder or a socket
fails with an unrelated message: each gets one line saying what was expected instead.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from deploykit.errors import DeployError, InputFileError

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def check_utf8(path: str | os.PathLike, what: str, error: type[DeployError] = InputFileError) -> None:
    """Refuse a path that is not UTF-8 text (on Linux a file name may hold any bytes): the
    runtimes deploykit drives take paths as UTF-8 strings and cannot open it."""
    full = os.path.abspath(os.fspath(path))
    try:
        full.encode("utf-8")
    except UnicodeEncodeError:
        shown = full.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise error(f"the path of the {what} is not valid UTF-8 ('{shown}'); rename it (or its folder)") from None


def regular_file(path: str | os.PathLike, what: str, hint: str = "",
                 error: type[DeployError] = InputFileError) -> Path:
    """``path`` if it is a readable regular file (symbolic links followed); else an ``error``
    (:class:`~deploykit.errors.InputFileError` by default) naming ``what`` it should have been."""
    p = Path(path)
    suffix = f"; {hint}" if hint else ""
    if not str(path).strip():
        raise error(f"no {what} given (an empty path){suffix}")
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise error(f"{what} {str(p)!r} does not exist{suffix}") from None
    except OSError as e:
        raise error(f"cannot access {what} {str(p)!r}: {e.strerror or e}{suffix}") from None
    for check, kind in _KINDS:
        if check(st.st_mode):
            raise error(f"{what} {str(p)!r} is {kind}, not a file{suffix}")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{what} {str(p)!r} is not a regular file{suffix}")
    if not os.access(p, os.R_OK):
        raise error(f"cannot read {what} {str(p)!r}: permission denied")
    check_utf8(p, what, error)
    return p
