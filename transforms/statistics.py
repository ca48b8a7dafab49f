"""Per-dataset action (and proprio) statistics: streaming, mergeable, memory bounded.

Moments merge exactly (Chan et al.'s parallel update). Quantiles come from a dyadic
histogram per dimension: BINS bins of width 2**e aligned to multiples of the width; when
the values need more than BINS bins the width doubles and neighbouring bins merge. Two
histograms merge at the coarser of their widths. Memory: BINS counts per dimension plus a
bounded buffer of raw rows, whatever the dataset's size.

Quantile error. q is np.quantile's default ('linear') on all values: between the order
statistics x_(i) and x_(i+1) at rank h = (n-1) q. Each order statistic is estimated by
the centre of its bin (exact for the min and max), so the error is at most half a bin
width. The width only doubles when BINS bins of half that width could not span the data:
range / (w/2) + 2 > BINS, so w < 2 range / (BINS - 2); merging may add one more doubling.
Hence |q - exact| <= w / 2 < 2 range / (BINS - 2) ~ 2.4e-4 * (max - min), within the
1e-3 * (max - min) this pipeline promises. (Values constant to within float64 precision
get bins of about one ulp.)
"""

from __future__ import annotations

import numpy as np

from transforms.moments import merge_moments

BINS = 8192
FLUSH_ROWS = 1 << 16  # raw rows buffered before they are folded into the moments and histograms
QUANTILES = (0.01, 0.99)
GRIPPER_MASK = [True] * 6 + [False]


class Accumulator:
    """Statistics of rows of a fixed dimension."""

    def __init__(self, dim: int):
        self.dim = dim
        self.n = 0
        self.mean = np.zeros(dim)
        self.m2 = np.zeros(dim)
        self.min = np.full(dim, np.inf)
        self.max = np.full(dim, -np.inf)
        self.exp = np.zeros(dim, np.int64)  # bin width 2**exp
        self.k0 = np.zeros(dim, np.int64)  # bin index (in units of the width) of counts[:, 0]
        self.counts = np.zeros((dim, BINS), np.int64)
        self.trajectories = 0
        self._buffer: list[np.ndarray] = []
        self._buffered = 0

    # ------------------------------------------------------------ adding

    def add(self, rows: np.ndarray, trajectory: bool = True) -> None:
        rows = np.asarray(rows, np.float64).reshape(-1, self.dim)
        if not np.isfinite(rows).all():
            raise ValueError("non-finite values: exclude the episode before adding it")
        self.trajectories += int(trajectory)
        if len(rows):
            self._buffer.append(rows)
            self._buffered += len(rows)
            if self._buffered >= FLUSH_ROWS:
                self.flush()

    def flush(self) -> Accumulator:
        if not self._buffer:
            return self
        x = np.concatenate(self._buffer)
        self._buffer, self._buffered = [], 0
        n, mean = len(x), x.mean(axis=0)
        self._merge_moments(n, mean, ((x - mean) ** 2).sum(axis=0))
        lo, hi = x.min(axis=0), x.max(axis=0)
        for d in range(self.dim):
            self._hist_add(d, x[:, d], lo[d], hi[d])
        self.min, self.max = np.minimum(self.min, lo), np.maximum(self.max, hi)
        return self

    def _merge_moments(self, n: int, mean: np.ndarray, m2: np.ndarray) -> None:
        self.n, self.mean, self.m2 = merge_moments(self.n, self.mean, self.m2, n, mean, m2)

    # ------------------------------------------------------------ histograms

    def _hist_add(self, d: int, v: np.ndarray, lo: float, hi: float) -> None:
        if not self.counts[d].any():
            self.exp[d] = _initial_exp(lo, hi)
            self.k0[d] = _index(lo, self.exp[d])
        self._cover(d, _index(lo, self.exp[d]), _index(hi, self.exp[d]))
        idx = _index(v, self.exp[d]) - self.k0[d]
        self.counts[d] += np.bincount(idx, minlength=BINS)

    def _cover(self, d: int, lo_idx: int, hi_idx: int, exp: int | None = None) -> None:
        """Re-bin dimension d so that bin indices [lo_idx, hi_idx] at width 2**exp fit."""
        exp = self.exp[d] if exp is None else exp
        nz = np.flatnonzero(self.counts[d])
        if len(nz):
            shift = exp - self.exp[d]
            lo_idx = min(lo_idx, (self.k0[d] + nz[0]) >> shift)
            hi_idx = max(hi_idx, (self.k0[d] + nz[-1]) >> shift)
        while hi_idx - lo_idx + 1 > BINS:
            exp, lo_idx, hi_idx = exp + 1, lo_idx >> 1, hi_idx >> 1
        if exp == self.exp[d] and lo_idx >= self.k0[d] and hi_idx < self.k0[d] + BINS:
            return
        row = np.zeros(BINS, np.int64)
        if len(nz):
            new = ((self.k0[d] + nz) >> (exp - self.exp[d])) - lo_idx
            np.add.at(row, new, self.counts[d, nz])
        self.counts[d], self.exp[d], self.k0[d] = row, exp, lo_idx

    # ------------------------------------------------------------ merging

    def merge(self, other: Accumulator) -> Accumulator:
        self.flush()
        other.flush()
        self.trajectories += other.trajectories
        if other.n == 0:
            return self
        if self.n == 0:
            self.n, self.mean, self.m2 = other.n, other.mean.copy(), other.m2.copy()
            self.min, self.max = other.min.copy(), other.max.copy()
            self.exp, self.k0, self.counts = other.exp.copy(), other.k0.copy(), other.counts.copy()
            return self
        self._merge_moments(other.n, other.mean, other.m2)
        self.min, self.max = np.minimum(self.min, other.min), np.maximum(self.max, other.max)
        for d in range(self.dim):
            exp = max(self.exp[d], other.exp[d])
            onz = np.flatnonzero(other.counts[d])
            oidx = (other.k0[d] + onz) >> (exp - other.exp[d])
            self._cover(d, int(oidx[0]), int(oidx[-1]), exp)
            oidx = ((other.k0[d] + onz) >> (self.exp[d] - other.exp[d])) - self.k0[d]
            np.add.at(self.counts[d], oidx, other.counts[d, onz])
        return self

    # ------------------------------------------------------------ results

    def quantile(self, q: float) -> np.ndarray:
        self.flush()
        h = (self.n - 1) * q
        i_lo, i_hi = int(np.floor(h)), int(np.ceil(h))
        return np.array(
            [
                _order_stat(self, d, i_lo) + (h - i_lo) * (_order_stat(self, d, i_hi) - _order_stat(self, d, i_lo))
                for d in range(self.dim)
            ]
        )

    def extract(self) -> dict:
        self.flush()
        if self.n == 0:
            raise ValueError("no rows")
        return {
            "mean": self.mean.tolist(),
            "std": np.sqrt(self.m2 / self.n).tolist(),
            "max": self.max.tolist(),
            "min": self.min.tolist(),
            "q01": self.quantile(QUANTILES[0]).tolist(),
            "q99": self.quantile(QUANTILES[1]).tolist(),
        }


def _initial_exp(lo: float, hi: float) -> int:
    mag = max(abs(lo), abs(hi))
    floor_exp = int(np.frexp(mag)[1]) - 53 if mag > 0 else -1074 + 60  # finer than float64 is meaningless
    rng = hi - lo
    exp = int(np.ceil(np.log2(rng / (BINS - 2)))) if rng > 0 else floor_exp
    return max(exp, floor_exp)


def _index(v, exp: int):
    idx = np.floor(np.ldexp(np.asarray(v, np.float64), -int(exp))).astype(np.int64)
    return idx if idx.ndim else int(idx)


def _order_stat(acc: Accumulator, d: int, i: int) -> float:
    """Estimate of the i-th smallest value (0-based) of dimension d: its bin's centre."""
    if i <= 0:
        return float(acc.min[d])
    if i >= acc.n - 1:
        return float(acc.max[d])
    b = int(np.searchsorted(np.cumsum(acc.counts[d]), i, side="right"))
    centre = np.ldexp(acc.k0[d] + b + 0.5, int(acc.exp[d]))
    return float(np.clip(centre, acc.min[d], acc.max[d]))


# ---------------------------------------------------------------- per dataset


class DatasetStatistics:
    """Action and (optional) proprio statistics of one dataset."""

    def __init__(self):
        self.action = Accumulator(7)
        self.proprio: Accumulator | None = None

    def add_episode(self, action: np.ndarray, proprio: np.ndarray | None = None) -> None:
        self.action.add(action)
        if proprio is not None and len(proprio):
            if self.proprio is None:
                self.proprio = Accumulator(proprio.shape[1])
            self.proprio.add(proprio)

    def merge(self, other: DatasetStatistics) -> DatasetStatistics:
        self.action.merge(other.action)
        if other.proprio is not None:
            if self.proprio is None:
                self.proprio = Accumulator(other.proprio.dim)
            self.proprio.merge(other.proprio)
        return self

    def extract(self) -> dict:
        out = {
            "action": {**self.action.extract(), "mask": list(GRIPPER_MASK)},
            "num_transitions": int(self.action.n),
            "num_trajectories": int(self.action.trajectories),
        }
        if self.proprio is not None and self.proprio.flush().n:
            out["proprio"] = self.proprio.extract()
        return out
