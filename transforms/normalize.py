"""Action normalization to [-1, 1] per dataset, and its inverse (pure numpy, trainer-importable).

`stats` is a dataset's "action" entry of dataset_statistics.json: mean, std, min, max, q01,
q99 and mask (False = leave the dimension as is: the gripper).

  bounds_q99 (default): clip(2 (x - q01) / (q99 - q01) - 1, -1, 1)
  bounds:               the same with min / max
  normal:               (x - mean) / std, not clipped
A dimension whose bounds coincide (or whose std is 0) carries no information and becomes 0.
"""

from __future__ import annotations

import numpy as np

from manifests.vocabulary import NORMALIZATIONS

MODES = tuple(NORMALIZATIONS)


def _params(stats: dict, mode: str, dim: int):
    if mode not in MODES:
        raise ValueError(f"normalization mode must be one of {MODES}, got {mode!r}")
    mask = np.asarray(stats.get("mask", [True] * dim), bool)
    if mode == "normal":
        return np.asarray(stats["mean"], np.float64), np.asarray(stats["std"], np.float64), mask
    lo_key, hi_key = ("q01", "q99") if mode == "bounds_q99" else ("min", "max")
    return np.asarray(stats[lo_key], np.float64), np.asarray(stats[hi_key], np.float64), mask


def normalize(x: np.ndarray, stats: dict, mode: str = "bounds_q99") -> np.ndarray:
    x = np.asarray(x, np.float64)
    a, b, mask = _params(stats, mode, x.shape[-1])
    if mode == "normal":
        live = b > 0
        out = np.where(live, (x - a) / np.where(live, b, 1.0), 0.0)
    else:
        live = b > a
        out = np.clip(np.where(live, 2 * (x - a) / np.where(live, b - a, 1.0) - 1, 0.0), -1, 1)
    return np.where(mask, out, x).astype(np.float32)


def unnormalize(y: np.ndarray, stats: dict, mode: str = "bounds_q99") -> np.ndarray:
    """A model's normalized output back in robot units. Clipped values come back as the bound;
    a dimension without information comes back as its (single) bound or mean."""
    y = np.asarray(y, np.float64)
    a, b, mask = _params(stats, mode, y.shape[-1])
    if mode == "normal":
        out = y * b + a
    else:
        out = (np.clip(y, -1, 1) + 1) / 2 * (b - a) + a
    return np.where(mask, out, y).astype(np.float32)
