"""Accuracy metrics of an artifact's outputs against the fp32 reference."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np


def compare_arrays(ref: np.ndarray, out: np.ndarray) -> dict[str, float]:
    """Max abs error, error relative to the reference's range, cosine and SQNR (dB)."""
    ref64 = np.asarray(ref, dtype=np.float64).ravel()
    out64 = np.asarray(out, dtype=np.float64).ravel()
    if ref64.shape != out64.shape:
        raise ValueError(f"shape mismatch: reference {np.shape(ref)} vs output {np.shape(out)}")
    if ref64.size == 0:
        return {"max_abs_error": 0.0, "rel_max_abs_error": 0.0, "cosine": 1.0, "sqnr_db": math.inf}
    finite = np.isfinite(ref64) & np.isfinite(out64)
    nonfinite_mismatch = int(np.sum(~finite & ~((np.isnan(ref64) & np.isnan(out64)) | (ref64 == out64))))
    r, o = ref64[finite], out64[finite]
    err = o - r
    max_abs = float(np.max(np.abs(err))) if err.size else 0.0
    rng = float(np.max(r) - np.min(r)) if r.size else 0.0
    scale = rng if rng > 0 else max(float(np.max(np.abs(r))) if r.size else 0.0, 1.0)
    nr, no = float(np.linalg.norm(r)), float(np.linalg.norm(o))
    if nr == 0 and no == 0:
        cosine = 1.0
    elif nr == 0 or no == 0:
        cosine = 0.0
    else:
        cosine = float(np.dot(r, o) / (nr * no))
    noise = float(np.sum(err * err))
    signal = float(np.sum(r * r))
    if noise == 0:
        sqnr = math.inf
    elif signal == 0:
        sqnr = -math.inf
    else:
        sqnr = 10.0 * math.log10(signal / noise)
    result = {
        "max_abs_error": max_abs,
        "rel_max_abs_error": max_abs / scale,
        "cosine": cosine,
        "sqnr_db": sqnr,
    }
    if nonfinite_mismatch:
        result["nonfinite_mismatches"] = float(nonfinite_mismatch)
    return result


def top1_agreement(ref: np.ndarray, out: np.ndarray) -> float | None:
    """Fraction of samples whose arg-max over the last axis agrees (classifier-like outputs only)."""
    if ref.ndim < 2 or ref.shape[-1] < 2 or ref.shape != out.shape:
        return None
    a = np.argmax(ref.reshape(-1, ref.shape[-1]), axis=-1)
    b = np.argmax(out.reshape(-1, out.shape[-1]), axis=-1)
    return float(np.mean(a == b))


def compare_outputs(
    refs: Sequence[Mapping[str, np.ndarray]], outs: Sequence[Mapping[str, np.ndarray]]
) -> dict[str, dict[str, float]]:
    """Metrics per output name over a list of samples (each a dict name -> array)."""
    names = list(refs[0]) if refs else []
    metrics: dict[str, dict[str, float]] = {}
    for name in names:
        ref = np.concatenate([np.asarray(r[name], dtype=np.float64).reshape(1, -1) for r in refs])
        out = np.concatenate([np.asarray(o[name], dtype=np.float64).reshape(1, -1) for o in outs])
        m = compare_arrays(ref, out)
        shaped_ref = np.stack([np.asarray(r[name]) for r in refs])
        shaped_out = np.stack([np.asarray(o[name]) for o in outs])
        per_sample = np.squeeze(shaped_ref[0]) if shaped_ref.size else shaped_ref
        if np.issubdtype(shaped_ref.dtype, np.floating) and per_sample.ndim == 1 and per_sample.size > 1:
            t1 = top1_agreement(shaped_ref.reshape(len(refs), -1), shaped_out.reshape(len(outs), -1))
            if t1 is not None:
                m["top1_agreement"] = t1
        metrics[name] = m
    return metrics


def json_safe(value):
    """Replace inf/nan (not valid JSON) by strings, recursively."""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
