"""Per-dataset action (and proprio) statistics: streaming, mergeable, deterministic.

Everything an accumulator holds merges exactly, so the result does not depend on how a runner
splits, bundles or merges the work: moments are exact integer sums (transforms/moments.py), min
and max are exact, and quantiles come from a log-linear histogram with integer counts.

Quantiles. Each value falls in a bucket given by the top bits of its IEEE-754 representation:
the sign, the exponent and the first SUB_BITS bits of the mantissa (as HdrHistogram does). A
bucket spans 2^-SUB_BITS of its power of two, so its midpoint is within 2^-(SUB_BITS + 1) =
REL_ERROR of every value in it, whatever the data's range: one outlier of 1e30 adds one bucket
and leaves q01/q99 as accurate as before. q is np.quantile's default ('linear') between the
order statistics x_(i) and x_(i+1) at rank h = (n-1) q; each order statistic is its bucket's
midpoint clipped to [min, max] (exact at the extremes), so |q - exact| <= REL_ERROR * max(|x_(i)|,
|x_(i+1)|) + MIN_MAGNITUDE. Values below MIN_MAGNITUDE (2^-40, 9e-13) share the zero bucket.
Memory: the buckets that hold data, at most 2^SUB_BITS per power of two and sign between
MIN_MAGNITUDE and the largest value (a dimension within [-1, 1]: under 170k buckets, however many values).
"""

from __future__ import annotations

import numpy as np

from transforms.moments import ExactMoments

SUB_BITS = 11
REL_ERROR = 2.0 ** -(SUB_BITS + 1)  # 2.4e-4
_SHIFT = 52 - SUB_BITS
MIN_MAGNITUDE = 2.0**-40  # smaller values share the zero bucket: memory is bounded whatever the data
_ZERO_BELOW = int(np.array(MIN_MAGNITUDE).view(np.int64)) >> _SHIFT
FLUSH_ROWS = 1 << 16  # raw rows buffered before they are folded into the moments and histograms
QUANTILES = (0.01, 0.99)
OUTLIER_SPREADS = 1000.0  # a value this many q01..q99 spreads outside [q01, q99] is reported
GRIPPER_MASK = [True] * 6 + [False]


def bucket_keys(x: np.ndarray) -> np.ndarray:
    """float64 -> int64 bucket keys, increasing with the value (negative values: negative keys)."""
    x = np.asarray(x, np.float64)
    k = np.abs(x).view(np.int64) >> _SHIFT
    k = np.where(k < _ZERO_BELOW, 0, k)
    return np.where(x < 0, -k, k)


def bucket_values(keys: np.ndarray) -> np.ndarray:
    """The midpoint of each bucket (0 for the zero bucket)."""
    keys = np.asarray(keys, np.int64)
    k = np.abs(keys)
    lo, hi = (k << _SHIFT).view(np.float64), ((k + 1) << _SHIFT).view(np.float64)
    mid = np.where(k > 0, lo + (hi - lo) / 2, 0.0)
    return np.where(keys < 0, -mid, mid)


class Counts:
    """Integer counts per int64 key, sparse: sorted keys and their counts; merging adds them."""

    __slots__ = ("keys", "counts")

    def __init__(self, keys: np.ndarray | None = None, counts: np.ndarray | None = None):
        self.keys = np.zeros(0, np.int64) if keys is None else keys
        self.counts = np.zeros(0, np.int64) if counts is None else counts

    @classmethod
    def of(cls, keys: np.ndarray) -> Counts:
        k, c = np.unique(np.asarray(keys, np.int64), return_counts=True)
        return cls(k, c.astype(np.int64))

    def merge(self, other: Counts) -> Counts:
        if len(other.keys):
            keys, inverse = np.unique(np.concatenate([self.keys, other.keys]), return_inverse=True)
            weights = np.concatenate([self.counts, other.counts]).astype(np.float64)  # exact below 2^53
            self.keys, self.counts = keys, np.bincount(inverse, weights, len(keys)).astype(np.int64)
        return self

    def total(self) -> int:
        return int(self.counts.sum())


class Accumulator:
    """Statistics of rows of a fixed dimension."""

    def __init__(self, dim: int):
        self.dim = dim
        self.moments = ExactMoments(dim)
        self.min = np.full(dim, np.inf)
        self.max = np.full(dim, -np.inf)
        self.hist = [Counts() for _ in range(dim)]
        self.trajectories = 0
        self._buffer: list[np.ndarray] = []
        self._buffered = 0

    @property
    def n(self) -> int:
        return self.moments.n + self._buffered

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
        self.moments.add(x)
        self.min, self.max = np.minimum(self.min, x.min(axis=0)), np.maximum(self.max, x.max(axis=0))
        for d in range(self.dim):
            self.hist[d].merge(Counts.of(bucket_keys(x[:, d])))
        return self

    def merge(self, other: Accumulator) -> Accumulator:
        self.flush()
        other.flush()
        self.trajectories += other.trajectories
        self.moments.merge(other.moments)
        self.min, self.max = np.minimum(self.min, other.min), np.maximum(self.max, other.max)
        for mine, theirs in zip(self.hist, other.hist):
            mine.merge(theirs)
        return self

    # ------------------------------------------------------------ results

    def order_stat(self, d: int, i: int) -> float:
        """Estimate of the i-th smallest value (0-based) of dimension d: its bucket's midpoint."""
        if i <= 0:
            return float(self.min[d])
        if i >= self.moments.n - 1:
            return float(self.max[d])
        h = self.hist[d]
        b = int(np.searchsorted(np.cumsum(h.counts), i, side="right"))
        return float(np.clip(bucket_values(h.keys[b : b + 1])[0], self.min[d], self.max[d]))

    def quantile(self, q: float) -> np.ndarray:
        self.flush()
        h = (self.moments.n - 1) * q
        lo, hi = int(np.floor(h)), int(np.ceil(h))
        out = []
        for d in range(self.dim):
            a, b = self.order_stat(d, lo), self.order_stat(d, hi)
            out.append(a + (h - lo) * (b - a))
        return np.array(out)

    def outliers(self, spread: float = OUTLIER_SPREADS) -> list[tuple[int, int, float]]:
        """(dimension, count, most extreme value) of values farther than `spread` times q99 - q01
        outside [q01, q99], per dimension that has such values (dimensions with q01 == q99 carry
        no scale and are left out: normalization zeroes them anyway)."""
        q01, q99 = self.quantile(QUANTILES[0]), self.quantile(QUANTILES[1])
        out = []
        for d, h in enumerate(self.hist):
            width = q99[d] - q01[d]
            if not width > 0:
                continue
            v = bucket_values(h.keys)
            far = (v < q01[d] - spread * width) | (v > q99[d] + spread * width)
            if far.any():
                extreme = self.max[d] if abs(self.max[d] - q99[d]) >= abs(q01[d] - self.min[d]) else self.min[d]
                out.append((d, int(h.counts[far].sum()), float(extreme)))
        return out

    def extract(self) -> dict:
        self.flush()
        if self.moments.n == 0:
            raise ValueError("no rows")
        return {
            "mean": self.moments.mean().tolist(),
            "std": np.sqrt(self.moments.var()).tolist(),
            "max": self.max.tolist(),
            "min": self.min.tolist(),
            "q01": self.quantile(QUANTILES[0]).tolist(),
            "q99": self.quantile(QUANTILES[1]).tolist(),
        }


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

    def flush(self) -> DatasetStatistics:
        self.action.flush()
        if self.proprio is not None:
            self.proprio.flush()
        return self

    def outlier_notes(self) -> list[str]:
        """What to report about absurd magnitudes (kept: the bounds normalization clips them)."""
        return [
            f"{n} action value(s) in dimension {d} lie over {OUTLIER_SPREADS:.0f}x the q01..q99 spread outside it "
            f"(most extreme {x:.6g}): kept, normalization clips them; check the source"
            for d, n, x in self.action.outliers()
        ]

    def extract(self) -> dict:
        out = {
            "action": {**self.action.extract(), "mask": list(GRIPPER_MASK)},
            "num_transitions": int(self.action.moments.n),
            "num_trajectories": int(self.action.trajectories),
        }
        if self.proprio is not None and self.proprio.flush().moments.n:
            out["proprio"] = self.proprio.extract()
        return out
