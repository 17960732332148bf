"""Run the deploykit CLI and this Python in subprocesses, as tests do (importable from any test:
``from clirun import run_cli``; a ``conftest`` import would resolve to the nearest conftest)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BUILTIN_PLUGINS = "profiles,onnxruntime"

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
