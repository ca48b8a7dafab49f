"""What a grid is fitted from, accumulated in one mergeable pass over the mixture's normalized actions.

Per variable (x, y, z, theta, phi, r, roll, pitch, yaw), each dataset contributes exact sums
(transforms/moments.py) for the Gaussian fit, integer counts in a fine fixed-range histogram
(FINE bins over the variable's range) for empirical quantile edges, precise to range / FINE,
and a uniform sample of at most SAMPLE steps (the smallest hashes of (episode id, step):
deterministic whatever the bundling) on which the grid's quality metrics are measured. All of
it merges exactly; mixture_fit then weighs each dataset as the trainer samples it (its
effective weight spread over its transitions), so the fit has the same bits on every runner.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from grids.grid import RANGES, VARIABLES
from grids.spherical import to_spherical
from transforms.moments import ExactMoments, weighted_mean_var
from transforms.statistics import Counts

FINE = 16384
SAMPLE = 100_000


def variables(actions: np.ndarray) -> np.ndarray:
    """Normalized actions [N, 7] -> [N, 9] in VARIABLES order."""
    a = np.clip(np.asarray(actions, np.float64), -1, 1)
    theta, phi, r = to_spherical(a[:, :3])
    return np.column_stack([a[:, 0], a[:, 1], a[:, 2], theta, phi, r, a[:, 3], a[:, 4], a[:, 5]])


def fine_cells(v: np.ndarray) -> np.ndarray:
    """Grid variables [N, 9] (`variables`) -> each value's fine cell (0..FINE-1) over RANGES."""
    lo, hi = np.array([RANGES[n] for n in VARIABLES]).T
    return np.clip(((v - lo) / (hi - lo) * FINE).astype(np.int64), 0, FINE - 1)


def fine_histograms(actions: np.ndarray, weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Normalized actions [N, 7] -> variable -> counts (or summed weights) over its FINE cells."""
    cells = fine_cells(variables(actions))
    return {
        name: np.bincount(cells[:, j], weights=weights, minlength=FINE).astype(np.float64)
        for j, name in enumerate(VARIABLES)
    }


def step_hashes(episode_id: str, n: int, seed: int = 0) -> np.ndarray:
    """A uniform, reproducible 64-bit hash per step of an episode; `seed` picks another sample."""
    start = int.from_bytes(hashlib.sha256(episode_id.encode()).digest()[:8], "little")
    start ^= (seed * 0x9E3779B97F4A7C15) % (1 << 64)
    x = (np.arange(n, dtype=np.uint64) + np.uint64(start)) * np.uint64(0x9E3779B97F4A7C15)
    x ^= x >> np.uint64(31)  # splitmix-style finalizer: a uniform, reproducible hash per step
    x *= np.uint64(0xBF58476D1CE4E5B9)
    return x ^ (x >> np.uint64(29))


class FitAccumulator:
    """The part of a grid fit that one group of steps of equal sampling weight contributes (a
    dataset, in the pipeline): unweighted and exact, so merging parts in any order gives the same
    bits. The weights are applied once, by mixture_fit."""

    def __init__(self, seed: int = 0):
        self.seed = seed  # of the metrics sample
        self.moments = ExactMoments(len(VARIABLES))
        self.hist = Counts()  # key: variable index * FINE + fine cell
        self.sample_hash = np.zeros(0, np.uint64)
        self.sample_actions = np.zeros((0, 7), np.float32)

    @property
    def steps(self) -> int:
        return self.moments.n

    def add(self, actions: np.ndarray, episode_id: str) -> FitAccumulator:
        """Normalized actions [T, 7] of one episode."""
        return self.add_steps(actions, step_hashes(episode_id, len(actions), self.seed))

    def add_steps(self, actions: np.ndarray, hashes: np.ndarray) -> FitAccumulator:
        """Normalized actions [N, 7] of any number of episodes, with their steps' hashes (step_hashes of
        each episode, concatenated): the same result as adding the episodes one by one, in one pass."""
        v = variables(actions)
        if not len(v):
            return self
        self.moments.add(v)
        cell = fine_cells(v)
        self.hist.merge(Counts.of((cell + np.arange(len(VARIABLES)) * FINE).ravel()))
        self._sample(np.asarray(hashes, np.uint64), np.asarray(actions, np.float32))
        return self

    def _sample(self, h: np.ndarray, actions: np.ndarray) -> None:
        h = np.concatenate([self.sample_hash, h])
        a = np.concatenate([self.sample_actions, actions])
        keep = np.argsort(h, kind="stable")[:SAMPLE]
        self.sample_hash, self.sample_actions = h[keep], a[keep]

    def merge(self, other: FitAccumulator) -> FitAccumulator:
        self.moments.merge(other.moments)
        self.hist.merge(other.hist)
        self._sample(other.sample_hash, other.sample_actions)
        return self

    def histograms(self) -> np.ndarray:
        """Counts [len(VARIABLES), FINE] as a dense array."""
        dense = np.zeros(len(VARIABLES) * FINE)
        dense[self.hist.keys] = self.hist.counts
        return dense.reshape(len(VARIABLES), FINE)


@dataclass
class MixtureFit:
    """What the grids are built from, over the mixture as the trainer samples it."""

    gs_params: dict  # variable -> {"mu", "sigma"}: weighted mean and (population) std
    histograms: dict  # variable -> weighted fine histogram over RANGES[variable]
    sample_actions: np.ndarray  # float32 [<= SAMPLE, 7], a uniform sample of steps (metrics)
    sample_weight: np.ndarray  # [<= SAMPLE], each step's sampling weight


def mixture_fit(parts: dict[str, FitAccumulator], step_weight: dict[str, float], min_sigma: float = 1e-6) -> MixtureFit:
    """Combine parts, each step of part p weighing step_weight[p] (a dataset's effective weight
    spread over its transitions). Exact rational moments and a fixed (sorted) order make the
    result the same bits whatever produced the parts."""
    names = sorted(n for n in parts if parts[n].steps and step_weight[n] > 0)
    if not names:
        raise ValueError("no weighted actions to fit Gaussians on")
    mean, var = weighted_mean_var([(parts[n].moments, step_weight[n]) for n in names])
    sigma = np.sqrt(np.maximum(var, 0.0))
    gs = {v: {"mu": float(mean[j]), "sigma": float(max(sigma[j], min_sigma))} for j, v in enumerate(VARIABLES)}
    hist = sum(parts[n].histograms() * step_weight[n] for n in names)
    h = np.concatenate([parts[n].sample_hash for n in names])
    a = np.concatenate([parts[n].sample_actions for n in names])
    w = np.concatenate([np.full(len(parts[n].sample_hash), step_weight[n]) for n in names])
    keep = np.argsort(h, kind="stable")[:SAMPLE]
    return MixtureFit(gs, dict(zip(VARIABLES, hist)), a[keep], w[keep])
