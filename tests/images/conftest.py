"""Image builds for real (marker ``images``): podman, daemonless, with local Debian bases.

The tests skip, with the reason, where podman is missing or does not work, where mmdebstrap is missing
(no local bases), and (arm64 only) where no qemu-aarch64 binfmt handler is registered. The bases are
made once per machine (``deploykit images bootstrap``: cached root tars + images keyed by the recipe,
under a file lock, so the two xdist workers share them) and reused by later runs.
CI sets podman up with scripts/podman-setup.sh (.ci/run).
"""

from __future__ import annotations

import functools
import shutil
import subprocess

import pytest

from cases import AMD64_BASES, ARM64_BASES, ENGINE


@functools.lru_cache(maxsize=None)
def podman_problem() -> str:
    if shutil.which(ENGINE) is None:
        return "podman is not installed (apt-get install podman runc; then scripts/podman-setup.sh)"
    out = subprocess.run([ENGINE, "info", "--format", "{{.Host.OCIRuntime.Name}}"], capture_output=True, text=True)
    if out.returncode != 0:
        from deploykit.docker.engine import fix_for

        return f"podman does not work here: {(out.stderr or out.stdout).strip()[-300:]}{fix_for(out.stderr)}"
    if shutil.which("mmdebstrap") is None:
        return "mmdebstrap is not installed: no local base images (apt-get install mmdebstrap)"
    return ""


def arm64_problem() -> str:
    from deploykit.docker.engine import qemu_handlers

    if "qemu-aarch64" not in qemu_handlers():
        return "no qemu-aarch64 binfmt handler: arm64 images cannot run here (qemu-user-static, binfmt-support)"
    return ""


def _bootstrap(names: list[str], arch: str) -> dict:
    from deploykit.docker.bases import bootstrap

    results = bootstrap(names, engine=ENGINE, archs=[arch])
    return {r.name: r for r in results}


@pytest.fixture(scope="session")
def amd64_bases():
    if podman_problem():
        pytest.skip(podman_problem())
    bases = _bootstrap(AMD64_BASES, "amd64")
    for name in AMD64_BASES:
        assert not bases[name].error, f"local base {name} (amd64) could not be made: {bases[name].error}"
    return bases


@pytest.fixture(scope="session")
def arm64_bases():
    if podman_problem() or arm64_problem():
        pytest.skip(podman_problem() or arm64_problem())
    # python:3.7-slim-buster may fail (archived suite): the coral-devboard case then expects its FROM step to stop
    bases = _bootstrap(ARM64_BASES, "arm64")
    assert not bases["python:3.11-slim-bookworm"].error, bases["python:3.11-slim-bookworm"].error
    return bases


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/images/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.images)
