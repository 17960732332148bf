"""The CPU class of this machine, as it matters for int8 arithmetic.

x86-64 CPUs without VNNI compute ONNX Runtime's and OpenVINO's u8 x s8 dot products with
``vpmaddubsw``, which sums pairs of products into a *saturating* int16: with 8-bit weights, two
large products overflow and the result is silently wrong. VNNI (``vpdpbusd``, AVX-512 VNNI or
AVX-VNNI) accumulates in int32. ARM CPUs (Raspberry Pi, Jetson) and accelerators (Edge TPU,
TensorRT, NPUs) have no such instruction. deploykit's int8 schemes for CPU runtimes therefore use
7-bit weights, and its simulations run int8 models through float kernels (exact on any CPU).

Used by ``deploykit doctor``, benchmark headers and verification reports. Kept free of heavy
imports (``doctor`` must start fast).
"""

from __future__ import annotations

import platform
import sys
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

_X86 = ("x86_64", "amd64", "i386", "i686", "x86")
_ARM64 = ("aarch64", "arm64", "armv8l")


@dataclass(frozen=True)
class CpuClass:
    """:ivar arch: ``x86-64``, ``arm64`` or the machine string.
    :ivar isa: the widest vector extension that matters here (``avx512``, ``avx2``, ``sse``,
        ``neon``, ...).
    :ivar vnni: x86 int8 dot products accumulate in int32 (AVX-512 VNNI or AVX-VNNI).
    :ivar dotprod: ARM ``sdot``/``udot`` (asimddp).
    """

    arch: str
    isa: str
    vnni: bool = False
    dotprod: bool = False

    @property
    def int8_saturates(self) -> bool:
        """u8 x s8 int8 kernels of CPU runtimes can saturate (x86 without VNNI)."""
        return self.arch == "x86-64" and not self.vnni

    @property
    def label(self) -> str:
        """Short name, e.g. ``x86-64 AVX-512 + VNNI``, ``x86-64 AVX2 (no VNNI)``, ``arm64 + dotprod``."""
        if self.arch == "x86-64":
            isa = {"avx512": "AVX-512", "avx2": "AVX2"}.get(self.isa, self.isa.upper())
            if self.vnni:
                return f"x86-64 {isa} + {'VNNI' if self.isa == 'avx512' else 'AVX-VNNI'}"
            return f"x86-64 {isa} (no VNNI)"
        if self.arch == "arm64":
            return "arm64 + dotprod" if self.dotprod else "arm64 (no dotprod)"
        return self.arch

    @property
    def int8_note(self) -> str:
        """What int8 means on this CPU, in one sentence."""
        if self.int8_saturates:
            return ("int8 dot products of ONNX Runtime / OpenVINO sum pairs in saturating int16 (vpmaddubsw): "
                    "deploykit's host and intel-cpu int8 use 7-bit weights, which cannot overflow")
        if self.arch == "x86-64":
            return "int8 dot products accumulate in int32 (VNNI): no saturation"
        if self.arch == "arm64":
            return "int8 dot products accumulate in int32: no saturation"
        return "int8 behaviour of this CPU is not characterised"

    def to_json(self) -> dict:
        return {**asdict(self), "label": self.label, "int8_saturates": self.int8_saturates}


def _flags() -> set[str]:
    """CPU feature flags from /proc/cpuinfo (Linux), lower case."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        key = line.split(":", 1)[0].strip().lower()
        if key in ("flags", "features"):
            return set(line.split(":", 1)[1].lower().split())
    return set()


def _numpy_flags() -> set[str]:
    """Features numpy detected at import (CPUID / HWCAP), mapped to /proc/cpuinfo names."""
    np_mod = sys.modules.get("numpy")
    if np_mod is None:
        return set()
    feats = {}
    for mod in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        try:
            feats = __import__(mod, fromlist=["__cpu_features__"]).__cpu_features__
            break
        except (ImportError, AttributeError):
            continue
    names = {"AVX2": "avx2", "AVX512F": "avx512f", "AVX512VNNI": "avx512_vnni", "ASIMDDP": "asimddp",
             "SSE41": "sse4_1"}
    return {names[k] for k, v in feats.items() if v and k in names}


@lru_cache(maxsize=1)
def cpu_class() -> CpuClass:
    """This machine's :class:`CpuClass` (flags from /proc/cpuinfo, else from numpy)."""
    machine = platform.machine().lower()
    flags = _flags() or _numpy_flags()
    if machine in _X86:
        vnni = "avx512_vnni" in flags or "avx_vnni" in flags
        isa = "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "sse"
        return CpuClass("x86-64", isa, vnni=vnni)
    if machine in _ARM64:
        return CpuClass("arm64", "neon", dotprod="asimddp" in flags)
    return CpuClass(machine or "unknown", "unknown")
