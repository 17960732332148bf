"""Atomic bundle output: build in a temporary sibling folder, rename into place on success."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

from deploykit.errors import BundleError


def check_output_dir(out: Path, force: bool) -> None:
    """Fail early (before any work) when ``out`` cannot be written."""
    if out.exists() and not force:
        raise BundleError(f"output folder {str(out)!r} already exists; pass --force to replace it or choose another -o")
    if out.exists() and not out.is_dir():
        raise BundleError(f"output path {str(out)!r} exists and is not a folder")


class StagedOutput:
    """Context manager: ``with StagedOutput(out, force) as stage: ...`` writes into ``stage.path``.

    On a clean exit the stage replaces ``out`` (an existing folder only with ``force``); on any
    exception the stage and any parent folders it created are removed, so no half-written bundle
    is ever left behind.
    """

    def __init__(self, out: str | Path, force: bool = False):
        self.out = Path(out).absolute()
        self.force = force
        self.path: Path | None = None
        self._created_parents: list[Path] = []

    def __enter__(self) -> StagedOutput:
        check_output_dir(self.out, self.force)
        parent = self.out.parent
        missing = []
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        for p in reversed(missing):
            p.mkdir()
            self._created_parents.append(p)
        self.path = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.", suffix=".partial", dir=self.out.parent))
        os.chmod(self.path, 0o755)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        assert self.path is not None
        if exc_type is not None:
            self._cleanup()
            return
        old = None
        try:
            if self.out.exists():
                check_output_dir(self.out, self.force)
                old = self.out.with_name(f".{self.out.name}.old-{os.getpid()}")
                os.rename(self.out, old)
            os.rename(self.path, self.out)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            if old is not None and not self.out.exists():
                os.rename(old, self.out)  # put the previous bundle back
            self._cleanup()
            raise

    def _cleanup(self) -> None:
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
        for p in reversed(self._created_parents):
            try:
                p.rmdir()
            except OSError:
                pass
