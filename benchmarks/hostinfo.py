"""Machine facts the benchmark scripts record next to their figures (no host names or paths).

The parsers live in the package (``deploykit.effect.host``), which the effect report uses too."""

from __future__ import annotations

from pathlib import Path

from deploykit.cpu import cpu_class
from deploykit.effect.host import cpu_model, memory_gb


def cpu_class_label() -> str:
    """e.g. ``x86-64 AVX-512 + VNNI`` or ``x86-64 AVX2 (no VNNI)``: int8 kernels of CPU runtimes
    behave differently on these (``deploykit/cpu.py``); every benchmark header names it."""
    return cpu_class().label


def proc_status_mb(pid: int, field: str = "VmRSS") -> float:
    """A memory field of ``/proc/PID/status`` (``VmRSS``, ``VmHWM``) in MB; 0 once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


__all__ = ["cpu_class_label", "cpu_model", "memory_gb", "proc_status_mb"]
