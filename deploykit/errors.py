"""User-facing errors.

Every problem caused by the user's input is raised as a :class:`DeployError`. The CLI prints it as
one line (``error: <message>``) and exits with a non-zero code; tracebacks only appear with
``--debug``. Messages say what is wrong *and* how to fix it.
"""

from __future__ import annotations


class DeployError(Exception):
    """An error the user can fix. ``str(err)`` is the one line shown after ``error:``."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(f"{message} ({hint})" if hint else message)


class ModelError(DeployError):
    """The input model cannot be read or is not valid."""


class TargetError(DeployError):
    """Unknown target or invalid target profile."""


class CalibrationError(DeployError):
    """Calibration data is missing or does not fit the model."""


class UnsupportedError(DeployError):
    """The model uses something the chosen backend cannot lower."""


class BundleError(DeployError):
    """The output folder or an existing bundle is not usable."""


class ToolchainError(DeployError):
    """A runtime or toolchain the step needs is not installed."""

    exit_code = 3


class InputFileError(DeployError):
    """A file the user named cannot be used (missing, a folder, a device, a pipe, unreadable)."""


_OS_ERRORS = {
    "ENOSPC": "no space left on the device",
    "EDQUOT": "disk quota exceeded",
    "EACCES": "permission denied",
    "EPERM": "operation not permitted",
    "EROFS": "read-only file system",
    "ENAMETOOLONG": "file name too long",
    "EMFILE": "too many open files",
    "ENFILE": "too many open files in the system",
    "EIO": "input/output error",
    "ENOENT": "no such file or folder",
    "ENOTDIR": "not a folder",
    "EISDIR": "is a folder",
    "ELOOP": "too many levels of symbolic links",
    "EFBIG": "file too large",
    "ENOMEM": "out of memory",
}
_OS_HINTS = {
    "ENOSPC": "free some space, or write the bundle (-o) or temporary files (TMPDIR) elsewhere",
    "EDQUOT": "free some space, or write the bundle (-o) or temporary files (TMPDIR) elsewhere",
    "EACCES": "choose a folder you can write to",
    "EPERM": "choose a folder you can write to",
    "EROFS": "choose a folder on a writable file system",
    "ENAMETOOLONG": "use a shorter name",
    "ENOMEM": "use smaller input shapes or fewer calibration samples, or a machine with more memory",
}
_DISK_FULL_TEXT = ("no space left on device", "disk quota exceeded")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and e not in seen and len(seen) < 20:
        seen.append(e)
        e = e.__cause__ or e.__context__
    return seen


def explain(exc: BaseException) -> DeployError | None:
    """A one-line :class:`DeployError` for failures that are the machine's or the input's, not
    deploykit's: out of memory, full disk, permissions, long names. ``None``: unknown (a bug).

    Looks through the exception's cause chain, since libraries often wrap these in their own types.
    """
    import errno

    for e in _chain(exc):
        if isinstance(e, DeployError):
            return e
        if isinstance(e, MemoryError):
            return DeployError(f"out of memory{': ' + _first_line(e) if str(e) else ''}",
                               hint=_OS_HINTS["ENOMEM"])
        if isinstance(e, RecursionError):
            return ModelError("the model is nested too deeply to process (Python recursion limit); "
                              "flatten its subgraphs or re-export it")
        if isinstance(e, OSError) and e.errno is not None:
            code = errno.errorcode.get(e.errno, "")
            if code in _OS_ERRORS:
                where = f" ({e.filename})" if getattr(e, "filename", None) else ""
                return DeployError(f"{_OS_ERRORS[code]}{where}", hint=_OS_HINTS.get(code))
    text = " ".join(str(e) for e in _chain(exc)).lower()
    if any(t in text for t in _DISK_FULL_TEXT):
        return DeployError(_OS_ERRORS["ENOSPC"], hint=_OS_HINTS["ENOSPC"])
    if "bad_alloc" in text or "failed to allocate memory" in text:
        return DeployError("out of memory", hint=_OS_HINTS["ENOMEM"])
    return None


def _first_line(e: BaseException) -> str:
    return next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
