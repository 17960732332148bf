"""Streaming per-tensor statistics with bounded memory.

Each :class:`TensorObserver` keeps the exact min/max, the exact ``TAIL`` largest and smallest
values, a fixed-size uniform reservoir of the rest, and (optionally) per-channel means. Range
methods (:mod:`deploykit.quant.ranges`) work from these, so memory does not grow with the
number of calibration samples.
"""

from __future__ import annotations

import numpy as np

RESERVOIR = 1 << 15
# Exact extremes kept per side: the percentile method's 99.99 % quantile is exact while it lies
# within them (up to 41 M observed values). Read from the reservoir instead, it is about its 3rd
# largest value: two tensors that differ only by a constant factor (PP-OCR rec's h-swish output
# and its learnable scaling) got ranges up to 30 % apart.
TAIL = 4096


def _extremes(flat: np.ndarray, largest: bool) -> np.ndarray:
    """Exactly the TAIL largest (or smallest) values of ``flat`` (unsorted).

    Large arrays are first cut at the TAIL-th extreme of a 1-in-16 subsample: at least TAIL values
    of ``flat`` lie beyond that threshold (or on it), so no true extreme is lost, and the costly
    partition only sees the few values past it.
    """
    if flat.size > 64 * TAIL:
        sub = flat[::16]
        k = sub.size - TAIL if largest else TAIL - 1
        t = np.partition(sub, k)[k]
        strict = flat[flat > t] if largest else flat[flat < t]
        if strict.size < TAIL:  # the rest of the extremes are copies of the threshold
            return np.concatenate([strict, np.full(TAIL - strict.size, t, flat.dtype)])
        flat = strict
    return np.partition(flat, flat.size - TAIL)[flat.size - TAIL:] if largest else np.partition(flat, TAIL - 1)[:TAIL]


def _merge_tail(tail: np.ndarray, flat: np.ndarray, largest: bool) -> np.ndarray:
    """Keep the TAIL largest (or smallest) values of ``tail`` + ``flat``, sorted ascending."""
    if tail.size >= TAIL:
        # only values beyond the current tail can enter it: a cheap vectorized filter
        flat = flat[flat > tail[0]] if largest else flat[flat < tail[-1]]
        if flat.size == 0:
            return tail
    if flat.size > TAIL:
        flat = _extremes(flat, largest)
    merged = np.sort(np.concatenate([tail, flat]))
    return merged[-TAIL:] if largest else merged[:TAIL]


class TensorObserver:
    """Statistics of one float tensor over all calibration batches."""

    def __init__(self, name: str, seed: int = 0, reservoir: int = RESERVOIR, channel_axis: int | None = None):
        self.name = name
        self.count = 0
        self.lo = np.inf
        self.hi = -np.inf
        self._cap = reservoir
        self._res = np.empty(0, np.float32)
        self._seen_for_res = 0
        self._top = np.empty(0, np.float32)
        self._bottom = np.empty(0, np.float32)
        self._rng = np.random.default_rng(seed)
        self.channel_axis = channel_axis
        self._chan_sum: np.ndarray | None = None
        self._chan_n = 0
        self.nonfinite = 0
        self.half_range: tuple[float, float] | None = None  # (lo, hi) after half of the samples

    def observe(self, x: np.ndarray) -> None:
        x = np.asarray(x)
        if x.size == 0:
            return
        if self.channel_axis is not None and x.ndim > self.channel_axis:
            axes = tuple(i for i in range(x.ndim) if i != self.channel_axis % x.ndim)
            s = x.sum(axis=axes, dtype=np.float64)
            n = x.size // x.shape[self.channel_axis]
            if self._chan_sum is None or self._chan_sum.shape != s.shape:
                self._chan_sum = np.zeros_like(s)
                self._chan_n = 0
            self._chan_sum += s
            self._chan_n += n
        flat = x.reshape(-1).astype(np.float32, copy=False)
        mn, mx = float(flat.min()), float(flat.max())
        if not (np.isfinite(mn) and np.isfinite(mx)):  # NaN/Inf propagate into min/max
            finite = np.isfinite(flat)
            self.nonfinite += int((~finite).sum())
            flat = flat[finite]
            if flat.size == 0:
                return
            mn, mx = float(flat.min()), float(flat.max())
        self.count += flat.size
        self.lo = min(self.lo, mn)
        self.hi = max(self.hi, mx)
        if self._top.size < TAIL or mx > self._top[0]:
            self._top = _merge_tail(self._top, flat, largest=True)
        if self._bottom.size < TAIL or mn < self._bottom[-1]:
            self._bottom = _merge_tail(self._bottom, flat, largest=False)
        self._add_reservoir(flat)

    def _add_reservoir(self, flat: np.ndarray) -> None:
        # Weighted merge: keep a uniform sample of everything seen so far.
        n_old, n_new = self._seen_for_res, flat.size
        total = n_old + n_new
        if total <= self._cap:
            self._res = np.concatenate([self._res, flat])
        else:
            take_new = int(round(self._cap * n_new / total))
            if take_new == 0:
                self._seen_for_res = total
                return
            if self._res.size < self._cap:  # fill up first
                fill = min(self._cap - self._res.size, n_new)
                self._res = np.concatenate([self._res, flat[:: max(1, n_new // fill)][:fill]])
                take_new = max(0, take_new - fill)
            if take_new:
                stride = max(n_new // take_new, 1)
                start = int(self._rng.integers(0, stride))
                new = flat[start::stride][:take_new]  # strided: cheap, no copy of the whole batch
                self._res[self._rng.integers(0, self._res.size, size=new.size)] = new
        self._seen_for_res = total

    # -- views used by range methods ----------------------------------------------------
    @property
    def sample(self) -> np.ndarray:
        """A uniform sample of all observed values (at most ``RESERVOIR`` + tails)."""
        return self._res

    def quantile(self, q: float) -> float:
        """Approximate quantile; exact in the tails kept."""
        if self.count == 0:
            return 0.0
        rank_top = (1.0 - q) * self.count  # values above the quantile
        if q >= 0.5 and rank_top < self._top.size:
            idx = max(int(np.floor(rank_top)), 0)
            return float(self._top[::-1][min(idx, self._top.size - 1)])
        rank_bottom = q * self.count
        if q < 0.5 and rank_bottom < self._bottom.size:
            idx = max(int(np.floor(rank_bottom)), 0)
            return float(self._bottom[min(idx, self._bottom.size - 1)])
        return float(np.quantile(self._res, q))

    @property
    def channel_mean(self) -> np.ndarray | None:
        if self._chan_sum is None or self._chan_n == 0:
            return None
        return self._chan_sum / self._chan_n

    @property
    def constant(self) -> bool:
        return self.count > 0 and self.lo == self.hi

    def nbytes(self) -> int:
        return self._res.nbytes + self._top.nbytes + self._bottom.nbytes
