"""The local bundle cache: ``$XDG_CACHE_HOME/deploykit/bundles/<key[:2]>/<key>/``.

Each entry holds ``bundle/`` (a finished, verified bundle) and ``entry.json`` (model, target,
precision, size, build time, peak memory, latency measured here, when it was built and last used).
Entries are written to a temporary folder and renamed into place, so a reader never sees half an
entry and two builds storing the same key do not collide. A cached bundle is re-verified against
its manifest (every file's sha256) before it is used; one that fails is dropped and rebuilt.

Beside the entries: ``build-history.json`` (peak memory and time of the last build of each
model/target/precision, for the memory-aware scheduler) and ``file-hashes.json`` (see
:mod:`deploykit.buildsys.fingerprint`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploykit.errors import DeployError

ENTRY_FILE = "entry.json"
BUNDLE_DIR = "bundle"
HISTORY_FILE = "build-history.json"
HASHES_FILE = "file-hashes.json"


def default_root() -> Path:
    """``$XDG_CACHE_HOME/deploykit`` (``~/.cache/deploykit`` when the variable is unset or relative)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "deploykit"


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file() and not p.is_symlink())


def copy_bundle(src: Path, dest: Path) -> None:
    """Copy a bundle folder to ``dest`` atomically: into a temporary sibling, then renamed over
    ``dest`` (an existing ``dest`` is replaced only once the copy is complete)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        shutil.copytree(src, tmp, dirs_exist_ok=True, symlinks=False, ignore=shutil.ignore_patterns("__pycache__"))
        os.chmod(tmp, 0o755)
        replace_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_dir(src: Path, dest: Path) -> None:
    """Rename ``src`` to ``dest`` (same file system), replacing a folder already there."""
    old = None
    if dest.exists() or dest.is_symlink():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old, ignore_errors=True)
        os.rename(dest, old)
    try:
        os.rename(src, dest)
    except BaseException:
        if old is not None and not dest.exists():
            os.rename(old, dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@dataclass
class CacheEntry:
    key: str
    path: Path
    meta: dict[str, Any]

    @property
    def bundle(self) -> Path:
        return self.path / BUNDLE_DIR

    @property
    def last_used(self) -> float:
        try:
            return (self.path / ENTRY_FILE).stat().st_mtime
        except OSError:
            return 0.0

    @property
    def size(self) -> int:
        return int(self.meta.get("size_bytes") or 0)

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, **self.meta, "last_used": round(self.last_used, 3)}


class BundleCache:
    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else default_root()
        self.bundles = self.root / "bundles"

    def _dir(self, key: str) -> Path:
        if len(key) != 64 or not all(c in "0123456789abcdef" for c in key):
            raise DeployError(f"{key!r} is not a bundle key (64 hex digits)")
        return self.bundles / key[:2] / key

    def get(self, key: str) -> CacheEntry | None:
        path = self._dir(key)
        meta = _read_json(path / ENTRY_FILE)
        if meta is None or not (path / BUNDLE_DIR).is_dir():
            return None
        return CacheEntry(key, path, meta)

    def verify(self, entry: CacheEntry) -> list[str]:
        """Problems of a cached bundle against its own manifest (empty list = usable)."""
        from deploykit.bundle.manifest import check_hashes, read_manifest

        try:
            return check_hashes(entry.bundle, read_manifest(entry.bundle))
        except DeployError as e:
            return [str(e)]

    def touch(self, entry: CacheEntry) -> None:
        try:
            os.utime(entry.path / ENTRY_FILE)
        except OSError:
            pass

    def store(self, key: str, bundle: Path, meta: dict[str, Any]) -> CacheEntry:
        """Copy a verified bundle into the cache (replaces an entry of the same key)."""
        path = self._dir(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}.", suffix=".partial", dir=path.parent))
        try:
            shutil.copytree(bundle, tmp / BUNDLE_DIR, symlinks=False, ignore=shutil.ignore_patterns("__pycache__"))
            meta = {**meta, "size_bytes": folder_size(tmp / BUNDLE_DIR), "stored": round(time.time(), 3)}
            (tmp / ENTRY_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            os.chmod(tmp, 0o755)
            replace_dir(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return CacheEntry(key, path, meta)

    def update(self, entry: CacheEntry, **fields: Any) -> None:
        """Add figures to an entry (e.g. latency measured after the build)."""
        entry.meta.update(fields)
        tmp = entry.path / f".{ENTRY_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(entry.meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, entry.path / ENTRY_FILE)

    def entries(self) -> list[CacheEntry]:
        out = []
        if not self.bundles.is_dir():
            return out
        for shard in sorted(self.bundles.iterdir()):
            if not shard.is_dir() or len(shard.name) != 2:
                continue
            for path in sorted(shard.iterdir()):
                if path.name.startswith("."):
                    continue
                meta = _read_json(path / ENTRY_FILE)
                if meta is not None:
                    out.append(CacheEntry(path.name, path, meta))
        return out

    def remove(self, entry: CacheEntry) -> None:
        shutil.rmtree(entry.path, ignore_errors=True)

    def prune(self, max_age_days: float | None = None, max_bytes: int | None = None) -> list[CacheEntry]:
        """Drop entries unused for ``max_age_days``, then the least recently used ones until the
        cache holds at most ``max_bytes``; also leftovers of interrupted stores. Returns what went."""
        removed = []
        entries = sorted(self.entries(), key=lambda e: e.last_used)
        if max_age_days is not None:
            limit = time.time() - max_age_days * 86400
            for e in [e for e in entries if e.last_used < limit]:
                self.remove(e)
                removed.append(e)
            entries = [e for e in entries if e not in removed]
        if max_bytes is not None:
            total = sum(e.size for e in entries)
            for e in entries:
                if total <= max_bytes:
                    break
                self.remove(e)
                removed.append(e)
                total -= e.size
        self._remove_partials(older_than_s=3600)
        return removed

    def clear(self) -> list[CacheEntry]:
        entries = self.entries()
        shutil.rmtree(self.bundles, ignore_errors=True)
        return entries

    def _remove_partials(self, older_than_s: float) -> None:
        if not self.bundles.is_dir():
            return
        limit = time.time() - older_than_s
        for p in self.bundles.glob("*/.*.partial"):
            try:
                if p.stat().st_mtime < limit:
                    shutil.rmtree(p, ignore_errors=True)
            except OSError:
                pass

    # -- memory and time of previous builds, for the scheduler
    def history(self) -> dict[str, dict[str, Any]]:
        data = _read_json(self.root / HISTORY_FILE)
        return data if isinstance(data, dict) else {}

    def record(self, updates: dict[str, dict[str, Any]]) -> None:
        if not updates:
            return
        data = self.history()
        data.update(updates)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{HISTORY_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.root / HISTORY_FILE)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def parse_size(text: str) -> int:
    """``500M``, ``2G``, ``1.5GiB``, ``100000`` -> bytes."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    factor = units.get(t[-1:], 1)
    number = t[:-1] if t[-1:] in units else t
    try:
        value = float(number)
    except ValueError:
        raise DeployError(f"{text!r} is not a size; write e.g. 500M or 2G") from None
    if value < 0:
        raise DeployError(f"{text!r} is not a size; it must not be negative")
    return int(value * factor)


def parse_age(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``7`` (days) -> days."""
    t = text.strip().lower()
    units = {"d": 1.0, "h": 1 / 24, "m": 1 / 1440, "w": 7.0}
    factor = units.get(t[-1:], 1.0)
    number = t[:-1] if t[-1:] in units else t
    try:
        value = float(number)
    except ValueError:
        raise DeployError(f"{text!r} is not an age; write e.g. 30d, 12h or 90m") from None
    if value < 0:
        raise DeployError(f"{text!r} is not an age; it must not be negative")
    return value * factor
