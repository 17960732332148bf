"""A short description of the machine latency was measured on (no host names, no paths)."""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from pathlib import Path


def _proc_field(path: str, key: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model(default: str = "unknown") -> str:
    """The CPU model name (``/proc/cpuinfo`` on Linux, ``platform.processor()`` elsewhere)."""
    return _proc_field("/proc/cpuinfo", "model name") or platform.processor() or default


def memory_gb() -> float | None:
    """Total memory in GiB from ``/proc/meminfo`` (one decimal), else None."""
    total = _proc_field("/proc/meminfo", "MemTotal")
    try:
        return round(int(total.split()[0]) / 2**20, 1) if total else None
    except ValueError:
        return None


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@lru_cache(maxsize=1)
def _static() -> tuple[str, int, str]:
    return cpu_model(), os.cpu_count() or 1, platform.machine()


def host_info(threads: int | None) -> dict:
    """``{cpu, cores, usable_cores, machine, threads}`` for the effect rows."""
    cpu, cores, machine = _static()
    return {"cpu": cpu, "cores": cores, "usable_cores": usable_cores(), "machine": machine, "threads": threads}
