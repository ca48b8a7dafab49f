"""Exact count, sum and sum of squares per dimension: mergeable in any order with the same bits.

Every finite double is an integer multiple of 2^-1126 once written as m * 2^(e - 53) with an
integer mantissa m (|m| < 2^53) and e >= -1073 (numpy.frexp). ExactMoments keeps sum x in units of
2^-1126 and sum x^2 in units of 2^-2252 as Python integers, so adding rows and merging partial
results are integer additions: any split of the data, any bundling, any merge order, on any
runner, gives the same integers, and the mean and variance are rounded once, at the end.

Adding is vectorized: the mantissas are cut into limbs small enough that numpy's float64
bincount sums them without rounding (< 2^53), grouped by (dimension, exponent); only the
non-empty groups, a few dozen per batch, touch Python integers.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

E_MIN = -1073  # the smallest exponent numpy.frexp gives a finite double
SUM_UNIT = 1126  # sum x is kept in units of 2^-1126 (mantissa bits 53 + |E_MIN|)
N_EXP = 1024 - E_MIN + 1  # exponents per dimension
MAX_ROWS = 1 << 16  # rows per vectorized pass: keeps every limb sum below 2^53


def _group_sums(index: np.ndarray, limbs: list[np.ndarray], size: int) -> list[np.ndarray]:
    return [np.bincount(index, weights=limb, minlength=size) for limb in limbs]


class ExactMoments:
    """n, sum x and sum x^2 per dimension of rows [N, D], exact."""

    __slots__ = ("dim", "n", "s1", "s2")

    def __init__(self, dim: int):
        self.dim = dim
        self.n = 0
        self.s1 = [0] * dim  # sum x   / 2^-1126
        self.s2 = [0] * dim  # sum x^2 / 2^-2252

    def add(self, rows: np.ndarray) -> ExactMoments:
        rows = np.asarray(rows, np.float64).reshape(-1, self.dim)
        for i in range(0, len(rows), MAX_ROWS):
            self._add_block(rows[i : i + MAX_ROWS])
        return self

    def _add_block(self, x: np.ndarray) -> None:
        if not len(x):
            return
        self.n += len(x)
        m, e = np.frexp(x)
        mant = np.ldexp(m, 53).astype(np.int64)  # exact: x = mant * 2^(e - 53)
        k = (e - E_MIN).astype(np.int64)  # x = mant * 2^k * 2^-1126
        index = (np.arange(self.dim, dtype=np.int64) * N_EXP + k).ravel()
        size = self.dim * N_EXP
        # sum x: mant = hi * 2^27 + lo, |hi| < 2^26, 0 <= lo < 2^27
        hi, lo = mant >> 27, mant & ((1 << 27) - 1)
        s_hi, s_lo = _group_sums(index, [hi.ravel().astype(np.float64), lo.ravel().astype(np.float64)], size)
        # sum x^2: |mant| = a2 * 2^36 + a1 * 2^18 + a0, every product of two limbs < 2^36
        a = np.abs(mant)
        a2, a1, a0 = (
            (a >> 36).astype(np.float64),
            ((a >> 18) & 0x3FFFF).astype(np.float64),
            (a & 0x3FFFF).astype(np.float64),
        )
        prods = [a2 * a2, a2 * a1, a2 * a0, a1 * a1, a1 * a0, a0 * a0]
        s22, s21, s20, s11, s10, s00 = _group_sums(index, [p.ravel() for p in prods], size)
        for g in np.flatnonzero((s_hi != 0) | (s_lo != 0) | (s00 != 0) | (s11 != 0) | (s22 != 0)).tolist():
            d, kk = divmod(g, N_EXP)
            self.s1[d] += ((int(s_hi[g]) << 27) + int(s_lo[g])) << kk
            sq = (
                (int(s22[g]) << 72)
                + (int(s21[g]) << 55)
                + ((int(s11[g]) + 2 * int(s20[g])) << 36)
                + (int(s10[g]) << 19)
                + int(s00[g])
            )
            self.s2[d] += sq << (2 * kk)

    def merge(self, other: ExactMoments) -> ExactMoments:
        self.n += other.n
        self.s1 = [a + b for a, b in zip(self.s1, other.s1)]
        self.s2 = [a + b for a, b in zip(self.s2, other.s2)]
        return self

    def mean(self) -> np.ndarray:
        return np.array([s / (self.n << SUM_UNIT) for s in self.s1])

    def var(self) -> np.ndarray:
        """Population variance, sum (x - mean)^2 / n, correctly rounded."""
        den = (self.n * self.n) << (2 * SUM_UNIT)
        return np.array([(self.n * s2 - s1 * s1) / den for s1, s2 in zip(self.s1, self.s2)])

    def fractions(self, d: int) -> tuple[Fraction, Fraction]:
        """(sum x, sum x^2) of dimension d as exact fractions."""
        return Fraction(self.s1[d], 1 << SUM_UNIT), Fraction(self.s2[d], 1 << (2 * SUM_UNIT))


def weighted_mean_var(parts: list[tuple[ExactMoments, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population variance of the union of parts whose rows carry one weight per part
    (sum w x / sum w), computed in exact rational arithmetic and rounded once."""
    dim = parts[0][0].dim
    total = sum(Fraction(w) * m.n for m, w in parts)
    if total <= 0:
        raise ValueError("no weighted rows")
    mean, var = np.empty(dim), np.empty(dim)
    for d in range(dim):
        s1 = sum(Fraction(w) * m.fractions(d)[0] for m, w in parts) / total
        s2 = sum(Fraction(w) * m.fractions(d)[1] for m, w in parts) / total
        mean[d], var[d] = float(s1), float(s2 - s1 * s1)
    return mean, var
