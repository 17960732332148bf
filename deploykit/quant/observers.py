"""Streaming per-tensor statistics with bounded memory.

Each :class:`TensorObserver` keeps the exact min/max, the exact ``TAIL`` largest and smallest
values, a fixed-size uniform reservoir of the rest, and (optionally) per-channel means. Range
methods (:mod:`deploykit.quant.ranges`) work from these, so memory does not grow with the
number of calibration samples.
"""

from __future__ import annotations

import numpy as np

RESERVOIR = 1 << 15
TAIL = 256


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

    def observe(self, x: np.ndarray) -> None:
        x = np.asarray(x)
        if x.size == 0:
            return
        if self.channel_axis is not None and x.ndim > self.channel_axis:
            axes = tuple(i for i in range(x.ndim) if i != self.channel_axis % x.ndim)
            s = x.astype(np.float64).sum(axis=axes)
            n = x.size // x.shape[self.channel_axis]
            if self._chan_sum is None or self._chan_sum.shape != s.shape:
                self._chan_sum = np.zeros_like(s)
                self._chan_n = 0
            self._chan_sum += s
            self._chan_n += n
        flat = x.reshape(-1).astype(np.float32, copy=False)
        finite = np.isfinite(flat)
        if not finite.all():
            self.nonfinite += int((~finite).sum())
            flat = flat[finite]
            if flat.size == 0:
                return
        self.count += flat.size
        self.lo = min(self.lo, float(flat.min()))
        self.hi = max(self.hi, float(flat.max()))
        k = min(TAIL, flat.size)
        if flat.size > k:
            top = np.partition(flat, flat.size - k)[flat.size - k:]
            bottom = np.partition(flat, k - 1)[:k]
        else:
            top = bottom = flat
        self._top = np.sort(np.concatenate([self._top, top]))[-TAIL:]
        self._bottom = np.sort(np.concatenate([self._bottom, bottom]))[:TAIL]
        self._add_reservoir(flat)

    def _add_reservoir(self, flat: np.ndarray) -> None:
        # Weighted merge: keep a uniform sample of everything seen so far.
        n_old, n_new = self._seen_for_res, flat.size
        total = n_old + n_new
        if total <= self._cap:
            self._res = np.concatenate([self._res, flat])
        else:
            take_new = int(round(self._cap * n_new / total))
            take_old = self._cap - take_new
            old = self._res if self._res.size <= take_old else self._res[self._rng.choice(self._res.size, take_old, replace=False)]
            new = flat[self._rng.integers(0, n_new, size=take_new)] if take_new < n_new else flat
            self._res = np.concatenate([old, new])
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
