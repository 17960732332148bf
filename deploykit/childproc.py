"""Run a toolchain step that can die natively (a C++ CHECK, SIGFPE, SIGSEGV) in a child process,
so its death is one clean ``error:`` line instead of the end of the build (issue 19: OpenVINO's
``compile_model`` of an INT8 ViT died with SIGFPE, LiteRT aborted on an int8 MiniLM).

The child prints one JSON line on stdout; :func:`run_json` returns it parsed."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Sequence
from typing import Any

from deploykit.errors import DeployError


def signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def run_json(cmd: Sequence[str], what: str, timeout: float, crash_hint: str) -> Any:
    """Run ``cmd``; its last JSON line. ``what`` names the step in messages ("OpenVINO's CPU
    plugin compiling the model"). A signal or a time-out raises :class:`DeployError`; a normal
    failure raises :class:`RuntimeError` with the child's last stderr line."""
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DeployError(f"{what} did not finish in {timeout:.0f} s") from None
    if proc.returncode < 0:
        raise DeployError(f"{what} crashed ({signal_name(proc.returncode)}); {crash_hint}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        last = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("INFO:")]
        raise RuntimeError(last[-1] if last else f"exit code {proc.returncode}")
    return json.loads(lines[-1])
