"""Folders owned by a running deploykit process, and the removal of those whose owner died.

A build's staging folder and its private temporary folder carry the owner's pid in their name and
are locked with ``flock`` on the folder itself while the owner runs. The kernel drops the lock when
the process ends in any way (also SIGKILL or a crash), so a later build can tell a dead owner's
leftovers (lock free, pid gone) from a running build's folder (locked, or pid alive) and remove
only the former.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: fall back to the pid alone
    fcntl = None  # type: ignore[assignment]

_BUSY = {errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES}


def hold(folder: str | Path) -> int | None:
    """Lock ``folder`` for this process; returns the descriptor to keep open (``None`` if the
    file system has no locks: the pid in the name is then the only mark)."""
    if fcntl is None:
        return None
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def release(fd: int | None) -> None:
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


def _locked(folder: Path) -> bool:
    if fcntl is None:
        return False
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return True  # cannot look inside: leave it alone
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        return e.errno in _BUSY
    finally:
        os.close(fd)
    return False


def owner_alive(folder: Path, pid: int) -> bool:
    """Whether the process that made ``folder`` may still be using it."""
    return _locked(folder) or pid_alive(pid)


def stale_folders(parent: str | Path, pattern: re.Pattern[str]) -> list[Path]:
    """Folders in ``parent`` whose name matches ``pattern`` (with a ``pid`` group) and whose
    owner is gone. Symbolic links and files are never returned."""
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return []
    stale = []
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if not m:
            continue
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
        except OSError:
            continue
        path = Path(entry.path)
        if not owner_alive(path, int(m.group("pid"))):
            stale.append(path)
    return stale


def remove_stale(parent: str | Path, pattern: re.Pattern[str]) -> list[Path]:
    """Remove the stale folders of :func:`stale_folders`; returns what was removed."""
    removed = []
    for path in stale_folders(parent, pattern):
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(path)
    return removed


def pid_pattern(prefix: str, suffix: str) -> re.Pattern[str]:
    """``prefix<pid>.<8 random chars>suffix`` as made by :func:`tempfile.mkdtemp`."""
    return re.compile(re.escape(prefix) + r"(?P<pid>\d+)[.-][a-z0-9_]{8}" + re.escape(suffix))
