"""TensorRT's INT8 calibration cache (text format) for the implicit-quantization path (facts §3).

::

    TRT-8201-EntropyCalibration2
    input: 3c010204
    conv1_out: 3d8f5c29

Line 1 is ``TRT-<NV_TENSORRT_VERSION>-<algorithm>``: TRT 8 writes major*1000+minor*100+patch
(8.2.1 -> 8201), TRT 10 caches carry e.g. ``100300`` for 10.3.0 (two-digit minor, unconfirmed).
Every other line is ``<tensor name>: <8 hex digits>``, the float32 bit pattern of the *scale*
(= amax / 127) written most-significant byte first; trtexec 8.2 splits at the last colon and reads
8 hex characters two after it, so the separator is ``": "`` and the hex is zero-padded.
trtexec's calibrator is EntropyCalibration2 only, so that is the header we write.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

import numpy as np

ALGORITHM = "EntropyCalibration2"


def version_number(version: str) -> int:
    """``"8.2.1"`` -> 8201, ``"10.3"`` -> 100300 (TRT 10+: two-digit minor and patch)."""
    parts = [int(p) for p in (str(version).split(".") + ["0", "0"])[:3]]
    major, minor, patch = parts
    if major >= 10:
        return major * 10000 + minor * 100 + patch
    return major * 1000 + minor * 100 + patch


def header(version: str, algorithm: str = ALGORITHM) -> str:
    return f"TRT-{version_number(version)}-{algorithm}"


def scale_to_hex(scale: float) -> str:
    return struct.pack("!f", float(np.float32(scale))).hex()


def hex_to_scale(text: str) -> float:
    return struct.unpack("!f", bytes.fromhex(text))[0]


def cache_scale(p) -> float | None:
    """The cache value (scale = amax / 127) of one :class:`~deploykit.quant.params.QuantParams`.

    Symmetric INT8 with zero point 0 covers ``[-128, 127] * scale``; TensorRT's dynamic range is
    symmetric ``±127 * value``, so the value is the scale itself. Other parameters (asymmetric,
    uint8) convert through their float range: ``max(|lo|, |hi|) / 127``. Per-channel parameters
    (weights) have no cache entry (TensorRT computes weight scales itself).
    """
    if np.ndim(p.scale) != 0:
        return None
    zp = int(np.asarray(p.zero_point).reshape(-1)[0]) if np.size(p.zero_point) else 0
    if p.dtype == "int8" and zp == 0:
        value = float(np.float32(p.scale))
    else:
        lo, hi = p.range if p.range is not None else p.dequantize(np.asarray([p.qmin, p.qmax]))
        value = max(abs(float(lo)), abs(float(hi))) / 127.0
    return value if value > 0 else None


def write_cache(params: Mapping[str, object], version: str, names: set[str] | None = None) -> str:
    """Cache text for activation ``params`` (restricted to ``names`` when given), sorted by name."""
    lines = [header(version)]
    for name in sorted(params):
        p = params[name]
        if getattr(p, "dtype", "int8") == "int32" or (names is not None and name not in names) or "\n" in name:
            continue
        value = cache_scale(p)
        if value is not None:
            lines.append(f"{name}: {scale_to_hex(value)}")
    return "\n".join(lines) + "\n"


def parse_cache(text: str) -> tuple[str, dict[str, float]]:
    """(header, {tensor: scale}) the way trtexec reads it: split at the last colon."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("TRT-"):
        raise ValueError("not a TensorRT calibration cache (first line must be TRT-<version>-<algorithm>)")
    scales = {}
    for line in lines[1:]:
        if not line.strip():
            continue
        cut = line.rindex(":")
        scales[line[:cut]] = hex_to_scale(line[cut + 2:cut + 10])
    return lines[0], scales
