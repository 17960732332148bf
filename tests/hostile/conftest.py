"""Fixtures of the hostile-input suite (see hostile_harness.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from hostile_harness import Sandbox  # noqa: E402


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/hostile/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.hostile)
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def sb(tmp_path) -> Sandbox:
    return Sandbox(tmp_path / "sb")


@pytest.fixture(scope="session")
def can_mount(tmp_path_factory) -> str | None:
    """``None`` when this process may mount a tmpfs (root with CAP_SYS_ADMIN), else the reason."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    probe = tmp_path_factory.mktemp("mountprobe")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True, text=True)
    if res.returncode != 0:
        return f"mount -t tmpfs is not allowed here: {res.stderr.strip() or res.returncode}"
    subprocess.run(["umount", str(probe)], check=False)
    return None


@pytest.fixture
def small_fs(can_mount, tmp_path):
    """``small_fs(size_kib, read_only=False) -> Path``: a tmpfs mounted for this test only."""
    if can_mount:
        pytest.skip(can_mount)
    mounted = []

    def mount(size_kib: int, read_only: bool = False) -> Path:
        point = tmp_path / f"fs{len(mounted)}"
        point.mkdir()
        opts = f"size={size_kib}k" + (",ro" if read_only else "")
        subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(point)], check=True)
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], check=False)
