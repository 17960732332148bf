"""Machine facts the benchmark scripts record next to their figures (no host names or paths).

The parsers live in the package (``deploykit.effect.host``), which the effect report uses too."""

from __future__ import annotations

from deploykit.effect.host import cpu_model, memory_gb

__all__ = ["cpu_model", "memory_gb"]
