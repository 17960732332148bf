"""Accuracy metrics of an artifact's outputs against the fp32 reference."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np


class RunningComparison:
    """Max abs error, error relative to the reference's range, cosine and SQNR (dB), accumulated
    over chunks (e.g. one sample at a time) so that no concatenated float64 copy of all outputs is
    ever made. ``add`` chunks in any order; ``result`` equals comparing the concatenation."""

    def __init__(self) -> None:
        self.max_abs = 0.0
        self.ref_lo, self.ref_hi, self.ref_absmax = math.inf, -math.inf, 0.0
        self.dot = self.ref_sq = self.out_sq = self.noise = 0.0
        self.nonfinite_mismatch = 0
        self.ref_nonfinite = 0
        self.size = 0

    def add(self, ref: np.ndarray, out: np.ndarray) -> RunningComparison:
        ref64 = np.asarray(ref, dtype=np.float64).ravel()
        out64 = np.asarray(out, dtype=np.float64).ravel()
        if ref64.shape != out64.shape:
            raise ValueError(f"shape mismatch: reference {np.shape(ref)} vs output {np.shape(out)}")
        self.size += ref64.size
        finite = np.isfinite(ref64) & np.isfinite(out64)
        if not finite.all():
            same = (np.isnan(ref64) & np.isnan(out64)) | (ref64 == out64)
            self.nonfinite_mismatch += int(np.sum(~finite & ~same))
            self.ref_nonfinite += int(np.sum(~np.isfinite(ref64)))
            ref64, out64 = ref64[finite], out64[finite]
        if ref64.size == 0:
            return self
        err = out64 - ref64
        self.max_abs = max(self.max_abs, float(np.max(np.abs(err))))
        self.ref_lo, self.ref_hi = min(self.ref_lo, float(ref64.min())), max(self.ref_hi, float(ref64.max()))
        self.ref_absmax = max(self.ref_absmax, float(np.max(np.abs(ref64))))
        self.dot += float(np.dot(ref64, out64))
        self.ref_sq += float(np.dot(ref64, ref64))
        self.out_sq += float(np.dot(out64, out64))
        self.noise += float(np.dot(err, err))
        return self

    def result(self) -> dict[str, float]:
        if self.size == 0:
            return {"max_abs_error": 0.0, "rel_max_abs_error": 0.0, "cosine": 1.0, "sqnr_db": math.inf}
        rng = self.ref_hi - self.ref_lo if self.ref_hi >= self.ref_lo else 0.0
        scale = rng if rng > 0 else max(self.ref_absmax, 1.0)
        nr, no = math.sqrt(self.ref_sq), math.sqrt(self.out_sq)
        if nr == 0 and no == 0:
            cosine = 1.0
        elif nr == 0 or no == 0:
            cosine = 0.0
        else:
            cosine = self.dot / (nr * no)
        if self.noise == 0:
            sqnr = math.inf
        elif self.ref_sq == 0:
            sqnr = -math.inf
        else:
            sqnr = 10.0 * math.log10(self.ref_sq / self.noise)
        result = {"max_abs_error": self.max_abs, "rel_max_abs_error": self.max_abs / scale, "cosine": cosine,
                  "sqnr_db": sqnr}
        if self.nonfinite_mismatch:
            result["nonfinite_mismatches"] = float(self.nonfinite_mismatch)
        if self.ref_nonfinite:
            result["reference_nonfinite"] = float(self.ref_nonfinite)
        return result


def compare_arrays(ref: np.ndarray, out: np.ndarray) -> dict[str, float]:
    """Max abs error, error relative to the reference's range, cosine and SQNR (dB)."""
    return RunningComparison().add(ref, out).result()


def top1_agreement(ref: np.ndarray, out: np.ndarray) -> float | None:
    """Fraction of samples whose arg-max over the last axis agrees (classifier-like outputs only)."""
    if ref.ndim < 2 or ref.shape[-1] < 2 or ref.shape != out.shape:
        return None
    a = np.argmax(ref.reshape(-1, ref.shape[-1]), axis=-1)
    b = np.argmax(out.reshape(-1, out.shape[-1]), axis=-1)
    return float(np.mean(a == b))


def is_distribution(x: np.ndarray, tol: float = 1e-3) -> bool:
    """Whether ``x`` holds probability vectors over its last axis (a Softmax output)."""
    if not np.issubdtype(x.dtype, np.floating) or x.size == 0 or x.shape[-1] < 2:
        return False
    return bool(x.min() >= -tol and x.max() <= 1 + tol and np.all(np.abs(x.sum(axis=-1, dtype=np.float64) - 1) < tol))


class PartComparison:
    """Per-part metrics of one output (see :mod:`deploykit.quant.parts`): one
    :class:`RunningComparison` per branch slice, plus top-k agreement for probability parts."""

    def __init__(self, tail) -> None:
        self.tail = tail
        self.masks = tail.masks()
        self.labels = tail.labels()
        self.running = [RunningComparison() for _ in self.masks]
        self.topk: list[list[float]] = [[] for _ in self.masks]

    def add(self, ref: np.ndarray, out: np.ndarray) -> bool:
        """Accumulate one sample; False when its shape does not match the parts' (then no parts)."""
        ref, out = np.asarray(ref), np.asarray(out)
        if ref.shape != self.masks[0].shape or out.shape != ref.shape:
            return False
        from deploykit.quant.parts import topk_agreement

        for i, mask in enumerate(self.masks):
            self.running[i].add(ref[mask], out[mask])
            if self.tail.probability[i]:
                self.topk[i].append(topk_agreement(ref[mask], out[mask]))
        return True

    def result(self) -> dict[str, dict[str, float]]:
        parts = {}
        for i, label in enumerate(self.labels):
            m = self.running[i].result()
            if self.topk[i]:
                m["topk_agreement"] = float(np.mean(self.topk[i]))
            parts[label] = m
        return parts


def compare_outputs(
    refs: Sequence[Mapping[str, np.ndarray]], outs: Sequence[Mapping[str, np.ndarray]],
    parts: Mapping[str, object] | None = None,
) -> dict[str, dict[str, float]]:
    """Metrics per output name over a list of samples (each a dict name -> array). ``parts``:
    output name -> :class:`~deploykit.quant.parts.ConcatTail`; those outputs get a ``parts``
    entry with the metrics of each branch's slice."""
    names = list(refs[0]) if refs else []
    metrics: dict[str, dict[str, float]] = {}
    for name in names:
        running = RunningComparison()
        split = PartComparison(parts[name]) if parts and name in parts else None
        for r, o in zip(refs, outs):
            running.add(r[name], o[name])
            if split is not None and not split.add(r[name], o[name]):
                split = None
        m = running.result()
        if split is not None:
            m["parts"] = split.result()
        shaped_ref = np.stack([np.asarray(r[name]) for r in refs])
        shaped_out = np.stack([np.asarray(o[name]) for o in outs])
        per_sample = np.squeeze(shaped_ref[0]) if shaped_ref.size else shaped_ref
        if np.issubdtype(shaped_ref.dtype, np.floating) and per_sample.ndim == 1 and per_sample.size > 1:
            t1 = top1_agreement(shaped_ref.reshape(len(refs), -1), shaped_out.reshape(len(outs), -1))
            if t1 is not None:
                m["top1_agreement"], m["top1_decisions"] = t1, len(refs)
        elif per_sample.ndim >= 2 and shaped_ref.shape == shaped_out.shape and is_distribution(shaped_ref):
            m["top1_agreement"] = top1_agreement(shaped_ref, shaped_out)  # per position (e.g. per time step)
            m["top1_decisions"] = int(shaped_ref.size // shaped_ref.shape[-1])
        if "top1_agreement" not in m and is_unit_score(shaped_ref):
            m["score_abs_error"] = m["max_abs_error"]
        metrics[name] = m
    return metrics


def is_unit_score(ref: np.ndarray) -> bool:
    """Whether ``ref`` (samples stacked) looks like a score in [0, 1] with no class axis: a wake-word,
    voice-activity or objectness probability. Its error is judged on that scale too (``score_abs_error``):
    relative to the observed range, scores of ~5e-6 on the verification samples made an exact fp32
    bundle fail (rel. error 0.006), and the cosine of an int8 output of exact zeros is 0."""
    if not np.issubdtype(ref.dtype, np.floating) or ref.size == 0 or ref.size // max(len(ref), 1) > 4:
        return False
    return bool(np.all(np.isfinite(ref)) and ref.min() >= 0.0 and ref.max() <= 1.0)


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
