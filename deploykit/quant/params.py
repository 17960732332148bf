"""Quantization parameters of one tensor."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

INT_RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int32": (-(2**31), 2**31 - 1), "int16": (-32768, 32767)}


@dataclass
class QuantParams:
    """Affine quantization ``q = clip(round(x / scale) + zero_point)``.

    :ivar scale: float32 array, shape ``()`` (per-tensor) or ``(C,)`` (per-channel along ``axis``).
    :ivar zero_point: int array of the same shape as ``scale``.
    :ivar dtype: ``"int8"``, ``"uint8"`` or ``"int32"`` (biases).
    :ivar axis: channel axis for per-channel parameters, else ``None``.
    :ivar method: the range method that produced it (``"minmax"``, ``"percentile"``, ...).
    :ivar range: the float range ``(lo, hi)`` the parameters cover.
    """

    scale: np.ndarray
    zero_point: np.ndarray
    dtype: str = "int8"
    axis: int | None = None
    method: str = "minmax"
    range: tuple[float, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def per_channel(self) -> bool:
        return self.axis is not None and np.ndim(self.scale) == 1

    @property
    def qmin(self) -> int:
        return INT_RANGES[self.dtype][0]

    @property
    def qmax(self) -> int:
        return INT_RANGES[self.dtype][1]

    def _bcast(self, a: np.ndarray, ndim: int) -> np.ndarray:
        if not self.per_channel:
            return a
        shape = [1] * ndim
        shape[self.axis] = -1
        return a.reshape(shape)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        s = self._bcast(np.asarray(self.scale, np.float32), x.ndim)
        z = self._bcast(np.asarray(self.zero_point, np.int64), x.ndim)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # tiny scales saturate: clipped below
            q = np.round(x / s) + z
        return np.clip(np.nan_to_num(q), self.qmin, self.qmax).astype(np.dtype(self.dtype))

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        s = self._bcast(np.asarray(self.scale, np.float32), q.ndim)
        z = self._bcast(np.asarray(self.zero_point, np.int64), q.ndim)
        return ((q.astype(np.int64) - z) * s).astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"dtype": self.dtype, "method": self.method}
        if self.per_channel:
            d["axis"] = self.axis
            d["scale"] = [float(v) for v in np.ravel(self.scale)]
            d["zero_point"] = [int(v) for v in np.ravel(self.zero_point)]
        else:
            d["scale"] = float(np.ravel(self.scale)[0])
            d["zero_point"] = int(np.ravel(self.zero_point)[0])
        if self.range is not None:
            d["range"] = [float(self.range[0]), float(self.range[1])]
        return d


def narrowed_range(dtype: str, bits: int = 8) -> tuple[int, int]:
    """The integer range of ``dtype`` restricted to ``bits`` (e.g. int8 with 7 bits: -64..63)."""
    qmin, qmax = INT_RANGES[dtype]
    if bits >= 8 or dtype not in ("int8", "uint8"):
        return qmin, qmax
    return (0, 2**bits - 1) if dtype == "uint8" else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def params_from_range(lo, hi, dtype: str = "int8", symmetric: bool = False, axis: int | None = None,
                      method: str = "minmax", bits: int = 8) -> QuantParams:
    """Scale/zero point covering ``[lo, hi]`` (arrays for per-channel), always including 0.

    ``bits`` < 8 maps the range onto fewer levels of ``dtype`` (7-bit weights: symmetric int8 in
    [-63, 63]); the stored dtype stays ``dtype``."""
    lo = np.minimum(np.asarray(lo, np.float64), 0.0)
    hi = np.maximum(np.asarray(hi, np.float64), 0.0)
    qmin, qmax = narrowed_range(dtype, bits)
    if symmetric:
        amax = np.maximum(np.abs(lo), np.abs(hi))
        # symmetric int8 uses [-127, 127] so that -x is representable (TFLite / TensorRT convention)
        half = (qmax - qmin) / 2.0 if dtype == "uint8" else float(qmax)
        scale = amax / half
        zp = np.full(np.shape(scale), (qmax + 1) // 2 if dtype == "uint8" else 0, np.int64)
    else:
        scale = (hi - lo) / float(qmax - qmin)
        safe = np.where(scale > 0, scale, 1.0)
        zp = np.clip(np.round(qmin - lo / safe), qmin, qmax).astype(np.int64)
    scale = np.where(scale > 0, scale, 1.0 if not np.ndim(scale) else np.float64(1e-8)).astype(np.float32)
    if np.ndim(scale) == 0:
        scale = np.where(scale > 0, scale, np.float32(1.0))
    return QuantParams(scale=np.asarray(scale, np.float32), zero_point=np.asarray(zp), dtype=dtype, axis=axis,
                       method=method, range=None if np.ndim(lo) else (float(lo), float(hi)))
