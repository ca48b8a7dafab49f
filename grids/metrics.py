"""How well a grid fits data: bin occupancy, token entropy, quantization error vs a uniform grid.

One code path for every place that scores a grid: the run (written into the grid file),
`grids.inspect` (the stored metrics, and the same computation on an export's shards) and the
report. Metrics are measured on a MixtureFit's sample (grids/fit.py: at most SAMPLE steps picked
by a hash of (episode id, step), each weighted as the trainer samples it), so the same datasets
give the same sample and the same numbers wherever they are computed. Beside them, the data's
histograms per variable on HIST_BINS fixed bins: what the grid file keeps of the data it was
fitted on, for plots without the shards.
"""

from __future__ import annotations

import numpy as np

from grids.fit import FINE, MixtureFit
from grids.grid import RANGES, ROTATION, TRANSLATION, VARIABLES, ActionGrid, uniform_grid
from grids.spherical import to_spherical
from grids.tokenizer import ActionTokenizer

HIST_BINS = 128  # a divisor of FINE: the stored histograms are exact sums of the fit's fine cells


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


def coarse_histograms(fine: dict, bins: int = HIST_BINS) -> dict:
    """Weighted fine histograms (variable -> FINE cells over RANGES[variable]) -> {"bins", "ranges",
    "shares": variable -> share of the weight per bin (4 significant digits: compact, and a tail of
    1e-6 stays visible on a log scale)}."""
    if FINE % bins:
        raise ValueError(f"bins must divide {FINE}, got {bins}")
    shares = {}
    for v in VARIABLES:
        h = np.asarray(fine[v], np.float64).reshape(bins, FINE // bins).sum(axis=1)
        total = h.sum()
        shares[v] = [float(f"{x:.4g}") for x in (h / total if total > 0 else h)]
    return {"bins": bins, "ranges": {v: list(RANGES[v]) for v in VARIABLES}, "shares": shares}


def fit_metrics(grid: ActionGrid, fit: MixtureFit, datasets: list[str], steps: int) -> dict:
    """The grid's metrics on a fit's sample, with what the sample is and the data's histograms: what
    the run writes into the grid file and what `grids.inspect --data` computes from an export."""
    metrics = grid_metrics(grid, fit.sample_actions, fit.sample_weight)
    metrics["data"] = {"datasets": list(datasets), "steps": int(steps), "sample_steps": int(len(fit.sample_actions))}
    metrics["histograms"] = coarse_histograms(fit.histograms)
    return metrics
