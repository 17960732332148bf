"""Shared fixtures. Tests never autoload plugins: registries are built from explicit modules, and
CLI subprocesses get DEPLOYKIT_PLUGINS limited to the in-repo plugins they need."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import modelzoo

BUILTIN_PLUGINS = "profiles,onnxruntime"
os.environ.setdefault("DEPLOYKIT_PLUGINS", BUILTIN_PLUGINS)


@pytest.fixture
def registry():
    import deploykit_onnxruntime
    import deploykit_profiles

    from deploykit.plugins import Registry

    return Registry.from_plugins([deploykit_profiles, deploykit_onnxruntime])


@pytest.fixture
def cnn(tmp_path) -> Path:
    return modelzoo.small_cnn(tmp_path / "cnn.onnx")


@pytest.fixture
def ppocr_cls() -> Path:
    p = modelzoo.ppocr_cls_path()
    if p is None:
        pytest.skip("rapidocr-onnxruntime (PP-OCR cls model) not installed")
    return p


# Run the suite as another x86 CPU class would: DEPLOYKIT_TEST_EMULATE_CPU=Haswell (AVX2, no VNNI)
# with pytest itself started under `qemu-x86_64-static -cpu Haswell`; CLI subprocesses follow.
EMULATE_CPU = os.environ.get("DEPLOYKIT_TEST_EMULATE_CPU", "").strip()


def python_command() -> list[str]:
    """The command that starts this Python (under QEMU when the suite emulates a CPU class)."""
    if EMULATE_CPU:
        import shutil

        qemu = shutil.which("qemu-x86_64-static") or shutil.which("qemu-x86_64")
        if qemu is None:
            raise RuntimeError("DEPLOYKIT_TEST_EMULATE_CPU is set but qemu-x86_64-static is not installed")
        return [qemu, "-cpu", EMULATE_CPU, sys.executable]
    return [sys.executable]


def run_cli(*args: str, cwd: str | Path | None = None, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``deploykit ARGS`` in a subprocess (fresh process, in-repo plugins only)."""
    full_env = dict(os.environ)
    full_env.setdefault("DEPLOYKIT_PLUGINS", BUILTIN_PLUGINS)
    full_env.update(env or {})
    timeout = timeout * 40 if EMULATE_CPU else timeout
    return subprocess.run(
        [*python_command(), "-m", "deploykit.cli.app", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, env=full_env, timeout=timeout,
    )


@pytest.fixture
def cli():
    return run_cli
