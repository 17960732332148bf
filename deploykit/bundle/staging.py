"""Atomic bundle output: build in a temporary sibling folder, rename into place on success.

Rules for the output folder (checked before any work, and again just before the rename):

- a new path, or an empty folder, is used as is;
- an existing deploykit bundle (its ``manifest.json`` says so and it holds nothing else) is
  replaced only with ``--force``; any other folder is never replaced -- deploykit deletes only
  what it built;
- the working folder, its parents, the home folder, ``/``, a folder holding the model or its
  calibration data, and a symbolic link are refused outright.

The staging folder ``.<name>.<pid>.XXXXXXXX.partial`` is locked by the building process
(:mod:`deploykit.locks`); a later build in the same parent removes the staging folders of builds
that died (SIGKILL, power loss), never those of a running one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from deploykit import locks, signals
from deploykit.errors import BundleError, explain
from deploykit.userfiles import check_utf8

# .<name, maybe shortened>.<pid>.XXXXXXXX.partial / .old: what StagedOutput makes
PARTIAL_RE = re.compile(r"\..+\.(?P<pid>\d+)\.[a-z0-9_]{8}\.partial")
OLD_RE = re.compile(r"\..+\.(?P<pid>\d+)\.[a-z0-9_]{8}\.old")
MANIFEST = "manifest.json"
RUNTIME_DIRS = ("__pycache__", "engines")  # made by running a bundle (Python caches, TensorRT engines)
_FOREIGN_SHOWN = 3


def _name_max(folder: Path) -> int:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return 255


def staging_stem(name: str, name_max: int = 255) -> str:
    """The ``<name>`` part of staging names: the output name, shortened (with a hash) when the
    staging suffixes would make it longer than the file system allows."""
    if len(os.fsencode(f".{name}.{os.getpid()}.xxxxxxxx.partial")) <= name_max:
        return name
    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:10]
    return f"{name[:24]}~{digest}"


def bundle_problem(folder: Path) -> str | None:
    """Why ``folder`` is not a deploykit bundle that ``--force`` may replace (``None``: it is one)."""
    manifest = folder / MANIFEST
    try:
        if manifest.is_symlink() or not manifest.is_file():
            return "it is not a deploykit bundle (no manifest.json)"
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "it is not a deploykit bundle (its manifest.json is not readable JSON)"
    if not (isinstance(data, dict) and isinstance(data.get("files"), dict) and "schema_version" in data
            and "deploykit_version" in data):
        return "it is not a deploykit bundle (its manifest.json is not a deploykit manifest)"
    listed = {str(k) for k in data["files"]} | {MANIFEST}
    foreign = []
    for root, dirs, files in os.walk(folder):
        rel_root = Path(root).relative_to(folder)
        if rel_root.parts and rel_root.parts[0] in RUNTIME_DIRS:
            continue
        for name in files + [d for d in dirs if Path(root, d).is_symlink()]:
            rel = (rel_root / name).as_posix()
            if rel not in listed or Path(root, name).is_symlink():
                foreign.append(rel)
        if len(foreign) > _FOREIGN_SHOWN:
            break
    if foreign:
        shown = ", ".join(repr(f) for f in sorted(foreign)[:_FOREIGN_SHOWN])
        return f"it holds files that are not part of the bundle ({shown}{', ...' if len(foreign) > _FOREIGN_SHOWN else ''})"
    return None


def _is_empty_dir(path: Path) -> bool:
    try:
        with os.scandir(path) as it:
            return next(it, None) is None
    except OSError:
        return False


def _protected(out: Path, protect: Sequence[str | Path]) -> str | None:
    """Why replacing ``out`` would destroy something that is not ours (``None``: it would not)."""
    real = out.resolve()
    cwd = Path.cwd().resolve()
    if real == cwd or real in cwd.parents:
        return "it is the working folder or one of its parents"
    try:
        home = Path.home().resolve()
    except (RuntimeError, KeyError, OSError):
        home = None
    if real in (home, Path(real.anchor)):
        return "it is the home folder or the root of the file system"
    for p in protect:
        if p and (real in Path(p).resolve().parents or real == Path(p).resolve()):
            return f"it holds {str(p)!r}, an input of this build"
    return None


def check_output_dir(out: Path, force: bool, protect: Sequence[str | Path] = ()) -> None:
    """Fail early (before any work) when ``out`` cannot or must not be written. Staging folders
    of dead builds beside ``out`` are removed first (:func:`remove_stale`).

    :param protect: input paths of the build (model, calibration data): never inside ``out``.
    """
    out = Path(out)
    shown = str(out)
    if not str(out).strip() or str(out) in (".", ".."):
        raise BundleError(f"-o {shown!r} names the working folder; choose a new folder for the bundle, "
                          "e.g. -o model-bundle")
    check_utf8(out, "output folder", BundleError)
    name_max = _name_max(out.absolute().parent)
    if len(os.fsencode(out.absolute().name)) > name_max:
        raise BundleError(f"output folder name {out.absolute().name[:40]!r}... is too long "
                          f"({len(os.fsencode(out.absolute().name))} bytes; this file system allows {name_max}): "
                          "choose a shorter -o")
    if out.is_symlink():
        raise BundleError(f"output path {shown!r} is a symbolic link; pass the folder itself or a new path with -o")
    parent = out.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise BundleError(f"cannot create {shown!r}: {str(parent)!r} is a file, not a folder; choose another -o")
    if parent == out.absolute().parent:
        remove_stale(parent)
    reason = _protected(out.absolute(), protect)
    if reason:
        raise BundleError(f"refusing to write the bundle to {shown!r}: {reason}; choose a new folder with -o")
    if not out.exists():
        return
    if not out.is_dir():
        raise BundleError(f"output path {shown!r} exists and is not a folder; choose another -o")
    if _is_empty_dir(out):
        return
    problem = bundle_problem(out)
    if problem:
        raise BundleError(f"output folder {shown!r} exists and {problem}; deploykit only replaces bundles it "
                          "built: choose another -o, or move the files away")
    if not force:
        raise BundleError(f"output folder {shown!r} already exists; pass --force to replace it or choose another -o")


def remove_stale(parent: Path) -> list[Path]:
    """Remove staging folders of dead builds in ``parent``; an ``.old`` folder of a dead build whose
    bundle never got renamed into place is restored instead (it is the previous bundle)."""
    removed = locks.remove_stale(parent, PARTIAL_RE)
    for old in locks.stale_folders(parent, OLD_RE):
        # .<name>.<pid>.XXXXXXXX.old -> <name>, when that name is not shortened and still free
        name = old.name[1:].rsplit(".", 3)[0]
        target = parent / name
        if not target.exists() and not target.is_symlink() and staging_stem(name, _name_max(parent)) == name:
            try:
                os.rename(old, target)
                continue
            except OSError:
                pass
        shutil.rmtree(old, ignore_errors=True)
        removed.append(old)
    return removed


class StagedOutput:
    """Context manager: ``with StagedOutput(out, force) as stage: ...`` writes into ``stage.path``.

    On a clean exit the stage replaces ``out`` (an existing bundle only with ``force``); on any
    exception -- also SIGINT/SIGTERM/SIGHUP (:mod:`deploykit.signals`) -- the stage and any parent
    folders it created are removed, so no half-written bundle is ever left behind.
    """

    def __init__(self, out: str | Path, force: bool = False, protect: Sequence[str | Path] = ()):
        self.out = Path(out).absolute()
        self.force = force
        self.protect = tuple(protect)
        self.path: Path | None = None
        self._created_parents: list[Path] = []
        self._lock: int | None = None

    def __enter__(self) -> StagedOutput:
        check_output_dir(self.out, self.force, self.protect)
        parent = self.out.parent
        missing = []
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        try:
            with signals.deferred(raise_after=True):  # a folder made is a folder recorded for cleanup
                for p in reversed(missing):
                    p.mkdir()
                    self._created_parents.append(p)
                stem = staging_stem(self.out.name, _name_max(self.out.parent))
                self.path = Path(tempfile.mkdtemp(prefix=f".{stem}.{os.getpid()}.", suffix=".partial", dir=self.out.parent))
                self._lock = locks.hold(self.path)
            os.chmod(self.path, 0o755)
        except BaseException as e:
            self._cleanup()
            if isinstance(e, OSError):
                raise BundleError(f"cannot create the bundle folder in {str(self.out.parent)!r}: "
                                  f"{e.strerror or e}; choose another -o") from e
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        assert self.path is not None
        if exc_type is not None:
            # measured before the cleanup frees what the failed write took
            full = self._disk_full(exc) if exc is not None and not isinstance(exc, (BundleError, KeyboardInterrupt)) else None
            self._cleanup()
            if full is not None:
                raise full from exc
            return
        old = None
        try:
            check_output_dir(self.out, self.force, self.protect)  # nothing changed it meanwhile
            with signals.deferred():
                if self.out.exists():
                    stem = staging_stem(self.out.name, _name_max(self.out.parent))
                    old = Path(tempfile.mkdtemp(prefix=f".{stem}.{os.getpid()}.", suffix=".old", dir=self.out.parent))
                    os.rename(self.out, old)  # replaces the empty placeholder folder
                os.rename(self.path, self.out)
                if old is not None:
                    shutil.rmtree(old, ignore_errors=True)
        except BaseException as e:
            with signals.deferred():
                if old is not None and not self.out.exists():
                    os.rename(old, self.out)  # put the previous bundle back
                elif old is not None:
                    shutil.rmtree(old, ignore_errors=True)
            self._cleanup()
            if isinstance(e, OSError):
                raise BundleError(f"cannot move the finished bundle to {str(self.out)!r}: {e.strerror or e}") from e
            raise
        finally:
            locks.release(self._lock)

    def _disk_full(self, exc: BaseException) -> BundleError | None:
        """The build failed and the output's or the temporary folder's disk is (nearly) full:
        say that rather than whatever the library that hit it made of it."""
        known = explain(exc)
        full = known is not None and str(known).startswith(("no space left", "disk quota"))
        for folder in (self.out.parent, Path(tempfile.gettempdir())):
            try:
                free = shutil.disk_usage(folder).free
            except OSError:
                continue
            if full or free < 1 << 20:
                return BundleError(f"no space left on the device of {str(folder)!r} ({free // 1024} KiB free): "
                                   "free some space, or write the bundle (-o) or temporary files (TMPDIR) elsewhere")
        return None

    def _cleanup(self) -> None:
        with signals.deferred():
            if self.path is not None:
                shutil.rmtree(self.path, ignore_errors=True)
            locks.release(self._lock)
            self._lock = None
            for p in reversed(self._created_parents):
                try:
                    p.rmdir()
                except OSError:
                    pass
