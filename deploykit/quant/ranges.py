"""Range methods: the float interval ``(lo, hi)`` an activation's int8 grid should cover.

Every method reads a :class:`~deploykit.quant.observers.TensorObserver` and returns ``(lo, hi)``:

``minmax``      exact observed min and max
``percentile``  the 0.01 % / 99.99 % quantiles (outliers clipped)
``entropy``     TensorRT-style KL-divergence threshold on a 2048-bin histogram
``mse``         the clipping range minimizing expected quantization MSE (rounding + clipping)
"""

from __future__ import annotations

import numpy as np

from deploykit.quant.observers import TensorObserver
from deploykit.quant.params import INT_RANGES

METHODS = ("minmax", "percentile", "entropy", "mse")


def minmax_range(obs: TensorObserver, **_: object) -> tuple[float, float]:
    return float(obs.lo), float(obs.hi)


def percentile_range(obs: TensorObserver, percentile: float = 99.99, **_: object) -> tuple[float, float]:
    q = percentile / 100.0
    lo = obs.quantile(1.0 - q) if obs.lo < 0 else float(obs.lo)
    hi = obs.quantile(q) if obs.hi > 0 else float(obs.hi)
    return float(min(lo, 0.0) if obs.lo < 0 else lo), float(hi)


def _fake_quant_mse(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, levels: int) -> np.ndarray:
    """MSE of fake-quantizing ``values`` for each candidate range (vectorized over candidates)."""
    lo = np.minimum(lo, 0.0)[:, None]
    hi = np.maximum(hi, 0.0)[:, None]
    scale = np.maximum((hi - lo) / (levels - 1), 1e-12)
    zp = np.round(-lo / scale)
    q = np.clip(np.round(values[None, :] / scale) + zp, 0, levels - 1)
    err = (q - zp) * scale - values[None, :]
    return np.mean(err * err, axis=1)


def mse_range(obs: TensorObserver, dtype: str = "int8", symmetric: bool = False, candidates: int = 20, **_: object) -> tuple[float, float]:
    """The clipping range of least expected int8 error (rounding inside, clipping outside): the
    observed values as the reservoir's bulk plus the exact tails, each weighted by its share.

    Reservoir values beyond the exact tails' thresholds are left out: there they are a few random
    picks (at 32768 of 3 M values, ~3 beyond the 99.99 % point) counted beside the exact values of
    the same region, and the optimum moved with them between tensors that are one constant factor
    apart. A reservoir that holds every value (small tensors) is used alone."""
    sample = obs.sample
    if sample.size == 0 or obs.lo == obs.hi:
        return float(obs.lo), float(obs.hi)
    qmin, qmax = INT_RANGES[dtype]
    levels = qmax - qmin + 1
    if symmetric:
        levels -= 1  # symmetric grids have 255 usable levels for int8
    amax = max(abs(obs.lo), abs(obs.hi))
    tails = np.empty(0)
    values = sample.astype(np.float64)
    if sample.size < obs.count and obs._top.size and obs._bottom.size:
        tails = np.concatenate([obs._top, obs._bottom]).astype(np.float64)
        values = values[(values > obs._bottom[-1]) & (values < obs._top[0])]
    weight_tail = min(tails.size / max(obs.count, 1), 1.0)
    if values.size == 0:
        values, weight_tail = tails, 1.0

    def search(fracs: np.ndarray) -> float:
        lo_c, hi_c = (-amax * fracs, amax * fracs) if symmetric else (obs.lo * fracs, obs.hi * fracs)
        mse = _fake_quant_mse(values, lo_c, hi_c, levels)
        if tails.size:
            mse = (1 - weight_tail) * mse + weight_tail * _fake_quant_mse(tails, lo_c, hi_c, levels)
        return float(fracs[int(np.argmin(mse))])

    coarse = search(np.linspace(0.05, 1.0, candidates))  # coarse, then fine around the best
    best = search(np.clip(np.linspace(coarse - 0.05, coarse + 0.05, candidates), 0.01, 1.0))
    return (-amax * best, amax * best) if symmetric else (float(obs.lo * best), float(obs.hi * best))


def _kl_threshold(hist: np.ndarray, edges: np.ndarray, levels: int = 128, step: int = 16) -> float:
    """TensorRT-style threshold: the clip bin minimizing KL(P || Q) with Q = P requantized to ``levels``."""
    hist = hist.astype(np.float64)
    nbins = hist.size
    if hist.sum() == 0:
        return float(edges[-1])
    tail = np.cumsum(hist[::-1])[::-1]  # tail[i] = sum(hist[i:])
    best_kl, best_i = np.inf, nbins
    for i in range(max(levels, step), nbins + 1, step):
        p = hist[:i].copy()
        if i < nbins:
            p[-1] += tail[i]
        nz = hist[:i] > 0
        chunk = (np.arange(i) * levels) // i  # chunk id of each bin
        chunk_sum = np.bincount(chunk, weights=hist[:i], minlength=levels)
        chunk_nz = np.bincount(chunk, weights=nz.astype(np.float64), minlength=levels)
        q = np.where(nz, chunk_sum[chunk] / np.maximum(chunk_nz[chunk], 1), 0.0)
        ps, qs = p.sum(), q.sum()
        if qs == 0:
            continue
        pn, qn = p / ps, q / qs
        m = (pn > 0) & (qn > 0)
        kl = float(np.sum(pn[m] * np.log(pn[m] / qn[m]))) + 10.0 * float(np.sum(pn[(pn > 0) & (qn == 0)]))
        if kl < best_kl:
            best_kl, best_i = kl, i
    return float(edges[best_i])


def entropy_range(obs: TensorObserver, bins: int = 1024, **_: object) -> tuple[float, float]:
    values = np.concatenate([obs.sample, obs._top, obs._bottom]).astype(np.float64)
    if values.size == 0 or obs.lo == obs.hi:
        return float(obs.lo), float(obs.hi)
    if obs.lo >= 0:
        hist, edges = np.histogram(values, bins=bins, range=(0.0, obs.hi))
        return float(obs.lo), _kl_threshold(hist, edges, levels=255)
    amax = max(abs(obs.lo), abs(obs.hi))
    hist, edges = np.histogram(np.abs(values), bins=bins, range=(0.0, amax))
    t = _kl_threshold(hist, edges, levels=128)
    return float(max(obs.lo, -t)), float(min(obs.hi, t))


RANGE_METHODS = {
    "minmax": minmax_range,
    "percentile": percentile_range,
    "entropy": entropy_range,
    "mse": mse_range,
}


def compute_range(method: str, obs: TensorObserver, **kwargs: object) -> tuple[float, float]:
    lo, hi = RANGE_METHODS[method](obs, **kwargs)
    if not np.isfinite(lo) or not np.isfinite(hi):
        lo, hi = 0.0, 0.0
    return min(lo, 0.0), max(hi, 0.0)
