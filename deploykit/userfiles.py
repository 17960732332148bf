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
    return p
