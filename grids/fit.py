"""What a grid is fitted from, accumulated in one mergeable pass over the mixture's normalized actions.

Each step carries a weight so that every dataset weighs what the trainer samples of it
(its effective weight spread over its transitions). Kept per variable (x, y, z, theta, phi,
r, roll, pitch, yaw): weighted mean and M2 (exact, Chan's merge) for the Gaussian fit; a
fine fixed-range weighted histogram (FINE bins over the variable's range) for empirical
quantile edges, precise to range / FINE; and a uniform sample of at most SAMPLE steps (the
smallest hashes of (episode id, step): deterministic whatever the bundling, mergeable) on
which the grid's quality metrics are measured.
"""

from __future__ import annotations

import hashlib

import numpy as np

from grids.grid import RANGES, VARIABLES
from grids.spherical import to_spherical
from transforms.moments import merge_moments

FINE = 16384
SAMPLE = 100_000


def variables(actions: np.ndarray) -> np.ndarray:
    """Normalized actions [N, 7] -> [N, 9] in VARIABLES order."""
    a = np.clip(np.asarray(actions, np.float64), -1, 1)
    theta, phi, r = to_spherical(a[:, :3])
    return np.column_stack([a[:, 0], a[:, 1], a[:, 2], theta, phi, r, a[:, 3], a[:, 4], a[:, 5]])


def step_hashes(episode_id: str, n: int, seed: int = 0) -> np.ndarray:
    """A uniform, reproducible 64-bit hash per step of an episode; `seed` picks another sample."""
    start = int.from_bytes(hashlib.sha256(episode_id.encode()).digest()[:8], "little")
    start ^= (seed * 0x9E3779B97F4A7C15) % (1 << 64)
    x = (np.arange(n, dtype=np.uint64) + np.uint64(start)) * np.uint64(0x9E3779B97F4A7C15)
    x ^= x >> np.uint64(31)  # splitmix-style finalizer: a uniform, reproducible hash per step
    x *= np.uint64(0xBF58476D1CE4E5B9)
    return x ^ (x >> np.uint64(29))


class FitAccumulator:
    def __init__(self, seed: int = 0):
        self.seed = seed  # of the metrics sample
        self.weight = 0.0
        self.mean = np.zeros(len(VARIABLES))
        self.m2 = np.zeros(len(VARIABLES))
        self.hist = np.zeros((len(VARIABLES), FINE))
        self.sample_hash = np.zeros(0, np.uint64)
        self.sample_actions = np.zeros((0, 7), np.float32)
        self.sample_weight = np.zeros(0)

    def add(self, actions: np.ndarray, step_weight: float, episode_id: str) -> FitAccumulator:
        v = variables(actions)
        n = len(v)
        if n == 0 or step_weight <= 0:
            return self
        w = step_weight * n
        mean = v.mean(axis=0)
        self._merge_moments(w, mean, step_weight * ((v - mean) ** 2).sum(axis=0))
        for j, name in enumerate(VARIABLES):
            lo, hi = RANGES[name]
            cell = np.clip(((v[:, j] - lo) / (hi - lo) * FINE).astype(np.int64), 0, FINE - 1)
            self.hist[j] += np.bincount(cell, minlength=FINE) * step_weight
        self._sample(step_hashes(episode_id, n, self.seed), np.asarray(actions, np.float32), np.full(n, step_weight))
        return self

    def _merge_moments(self, w, mean, m2):
        self.weight, self.mean, self.m2 = merge_moments(self.weight, self.mean, self.m2, w, mean, m2)

    def _sample(self, h, actions, weights):
        h = np.concatenate([self.sample_hash, h])
        a = np.concatenate([self.sample_actions, actions])
        w = np.concatenate([self.sample_weight, weights])
        keep = np.argsort(h, kind="stable")[:SAMPLE]
        self.sample_hash, self.sample_actions, self.sample_weight = h[keep], a[keep], w[keep]

    def merge(self, other: FitAccumulator) -> FitAccumulator:
        if other.weight > 0:
            self._merge_moments(other.weight, other.mean, other.m2)
            self.hist += other.hist
            self._sample(other.sample_hash, other.sample_actions, other.sample_weight)
        return self

    def gs_params(self, min_sigma: float = 1e-6) -> dict:
        sigma = np.sqrt(self.m2 / self.weight)
        return {
            name: {"mu": float(self.mean[j]), "sigma": float(max(sigma[j], min_sigma))}
            for j, name in enumerate(VARIABLES)
        }

    def histograms(self) -> dict:
        return {name: self.hist[j] for j, name in enumerate(VARIABLES)}
