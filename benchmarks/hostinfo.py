"""Machine facts the benchmark scripts record next to their figures (no host names or paths)."""

from __future__ import annotations

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
    """The CPU model name from /proc/cpuinfo, else ``default``."""
    return _proc_field("/proc/cpuinfo", "model name") or default


def memory_gb() -> float | None:
    """Total memory in GiB from /proc/meminfo (one decimal), else None."""
    total = _proc_field("/proc/meminfo", "MemTotal")
    try:
        return round(int(total.split()[0]) / 2**20, 1) if total else None
    except ValueError:
        return None
