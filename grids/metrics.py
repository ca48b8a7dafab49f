"""How well a grid fits data: bin occupancy, token entropy, quantization error vs a uniform grid."""

from __future__ import annotations

import numpy as np

from grids.grid import ROTATION, TRANSLATION, ActionGrid, uniform_grid
from grids.spherical import to_spherical
from grids.tokenizer import ActionTokenizer


def normalized_entropy(counts: np.ndarray) -> float:
    """Entropy of the histogram / log(number of bins): 1.0 when every bin is used equally."""
    counts = np.asarray(counts, np.float64)
    total = counts.sum()
    if total <= 0 or len(counts) < 2:
        return 0.0
    p = counts[counts > 0] / total
    return float(-(p * np.log(p)).sum() / np.log(len(counts)))


def _quantization_error(tok: ActionTokenizer, actions: np.ndarray, weights: np.ndarray) -> float:
    a = np.clip(actions, -1, 1)
    err = np.abs(tok.decode(tok.encode(a))[:, :6] - a[:, :6]).mean(axis=1)
    return float(np.average(err, weights=weights))


def grid_metrics(grid: ActionGrid, actions: np.ndarray, weights: np.ndarray | None = None) -> dict:
    """Metrics of `grid` on normalized actions [N, 7] (optionally weighted per step)."""
    actions = np.asarray(actions, np.float64)
    weights = np.ones(len(actions)) if weights is None else np.asarray(weights, np.float64)
    tok = ActionTokenizer(grid)
    tokens = tok.encode(actions)
    a = np.clip(actions, -1, 1)
    theta, phi, r = to_spherical(a[:, :3])
    values = {"theta": theta, "phi": phi, "r": r, "roll": a[:, 3], "pitch": a[:, 4], "yaw": a[:, 5]}
    per_variable = {}
    for v in (*TRANSLATION, *ROTATION):
        occ = np.bincount(tok.bins(v, values[v]), weights=weights, minlength=grid.counts[v])
        share = occ / occ.sum()
        per_variable[v] = {
            "occupancy": [round(float(s), 6) for s in share],
            "occupancy_min": float(share.min()),
            "occupancy_max": float(share.max()),
            "entropy": normalized_entropy(occ),
        }
    trans = np.bincount(tokens[:, 0], weights=weights, minlength=grid.translation_tokens)
    rot = np.bincount(tokens[:, 1] - tok.rotation_offset, weights=weights, minlength=grid.rotation_tokens)
    error = _quantization_error(tok, actions, weights)
    uniform_error = _quantization_error(ActionTokenizer(uniform_grid(grid.counts)), actions, weights)
    return {
        "samples": int(len(actions)),
        "translation_token_entropy": normalized_entropy(trans),
        "rotation_token_entropy": normalized_entropy(rot),
        "token_entropy": normalized_entropy(np.concatenate([trans, rot])),
        "translation_tokens_used": int((trans > 0).sum()),
        "rotation_tokens_used": int((rot > 0).sum()),
        "mean_quantization_error": error,
        "uniform_grid_quantization_error": uniform_error,
        "quantization_error_vs_uniform": error / uniform_error if uniform_error > 0 else None,
        "variables": per_variable,
    }
