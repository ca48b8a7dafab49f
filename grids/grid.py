"""The adaptive action grid: equal-probability bins per variable, and its JSON file.

A grid file means to this pipeline exactly what it means to a released SpatialVLA
checkpoint: the same `num_bins`, `gs_params` and `bin_policy` layout, the same edge formula
ppf(linspace(cdf(lo), cdf(hi), n + 1)) clipped to [lo, hi].
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import norm

from storage import files
from storage.jsonio import canonical

TRANSLATION = ("theta", "phi", "r")
ROTATION = ("roll", "pitch", "yaw")
VARIABLES = ("x", "y", "z", *TRANSLATION, *ROTATION)
RANGES = {
    "theta": (0.0, math.pi),
    "phi": (-math.pi, math.pi),
    "r": (0.0, math.sqrt(3.0)),
    "roll": (-1.0, 1.0),
    "pitch": (-1.0, 1.0),
    "yaw": (-1.0, 1.0),
    "x": (-1.0, 1.0),
    "y": (-1.0, 1.0),
    "z": (-1.0, 1.0),
}
DEFAULT_COUNTS = {"theta": 16, "phi": 32, "r": 8, "roll": 16, "pitch": 16, "yaw": 16, "gripper": 2}


class GridFileError(ValueError):
    """A file that is not a usable grid; the message names the file and what is wrong."""


def gaussian_edges(lo: float, hi: float, mu: float, sigma: float, n: int) -> np.ndarray:
    """n equal-probability bins of N(mu, sigma) truncated to [lo, hi]: n + 1 edges."""
    p = np.linspace(norm.cdf(lo, loc=mu, scale=sigma), norm.cdf(hi, loc=mu, scale=sigma), n + 1)
    return np.clip(norm.ppf(p, loc=mu, scale=sigma), lo, hi)


def uniform_edges(lo: float, hi: float, n: int) -> np.ndarray:
    return np.linspace(lo, hi, n + 1)


@dataclass
class ActionGrid:
    counts: dict  # theta, phi, r, roll, pitch, yaw, gripper -> number of bins
    edges: dict  # theta ... yaw -> np.ndarray of n + 1 edges
    gs_params: dict = field(default_factory=dict)  # variable -> {"mu", "sigma"}
    distribution: str = "gaussian"  # gaussian | empirical | uniform
    provenance: dict = field(default_factory=dict)
    metrics: dict | None = None

    @property
    def translation_tokens(self) -> int:
        return self.counts["theta"] * self.counts["phi"] * self.counts["r"]

    @property
    def rotation_tokens(self) -> int:
        return self.counts["roll"] * self.counts["pitch"] * self.counts["yaw"]

    @property
    def total_tokens(self) -> int:
        return self.translation_tokens + self.rotation_tokens + self.counts["gripper"]

    def centres(self, var: str) -> np.ndarray:
        e = self.edges[var]
        return (e[:-1] + e[1:]) / 2

    def to_json(self) -> dict:
        c = self.counts
        out = {
            "num_bins": {
                "translation": {f"{v}_bins": c[v] for v in TRANSLATION},
                "rotation": {f"{v}_bins": c[v] for v in ROTATION},
                "gripper": c["gripper"],
                "total": self.total_tokens,
            },
            "gs_params": {v: {"mu": float(p["mu"]), "sigma": float(p["sigma"])} for v, p in self.gs_params.items()},
            "bin_policy": {
                "translation": {f"{v}_bins": [float(x) for x in self.edges[v]] for v in TRANSLATION},
                "rotation": {f"{v}_bins": [float(x) for x in self.edges[v]] for v in ROTATION},
            },
            "use_spherical": True,
            "distribution": self.distribution,
            "provenance": self.provenance,
        }
        if self.metrics is not None:
            out["metrics"] = self.metrics
        return out

    def dumps(self) -> str:
        return canonical(self.to_json())

    @classmethod
    def from_json(cls, doc: dict, source: str = "grid") -> ActionGrid:
        try:
            nb = doc["num_bins"]
            counts = {
                **{v: int(nb["translation"][f"{v}_bins"]) for v in TRANSLATION},
                **{v: int(nb["rotation"][f"{v}_bins"]) for v in ROTATION},
                "gripper": int(nb.get("gripper", 2)),
            }
            policy = doc["bin_policy"]
            edges = {v: np.asarray(policy["translation"][f"{v}_bins"], np.float64) for v in TRANSLATION}
            edges |= {v: np.asarray(policy["rotation"][f"{v}_bins"], np.float64) for v in ROTATION}
        except (KeyError, TypeError, ValueError) as e:
            raise GridFileError(f"{source}: not a grid file (missing or malformed {e})") from None
        if not doc.get("use_spherical", True):
            raise GridFileError(f"{source}: only spherical translation grids are supported (use_spherical is false)")
        for v, e in edges.items():
            if len(e) != counts[v] + 1:
                raise GridFileError(f"{source}: {v}_bins has {len(e)} edges, num_bins says {counts[v]} bins")
            if not (np.isfinite(e).all() and (np.diff(e) >= 0).all()):
                raise GridFileError(f"{source}: {v}_bins edges are not finite and increasing")
        return cls(
            counts,
            edges,
            doc.get("gs_params", {}),
            doc.get("distribution", "gaussian"),
            doc.get("provenance", {}),
            doc.get("metrics"),
        )

    @classmethod
    def load(cls, path: str) -> ActionGrid:
        try:
            doc = json.loads(files.read_text(path))
        except OSError as e:
            raise GridFileError(f"{path}: cannot read ({e.strerror or e})") from None
        except json.JSONDecodeError as e:
            raise GridFileError(f"{path}: not JSON ({e.msg} at line {e.lineno})") from None
        if not isinstance(doc, dict):
            raise GridFileError(f"{path}: not a grid file (expected a JSON object)")
        return cls.from_json(doc, path)


def _counts(counts: dict | None) -> dict:
    return {**DEFAULT_COUNTS, **(counts or {})}


def grid_from_gaussians(gs_params: dict, counts: dict | None = None, **kw) -> ActionGrid:
    c = _counts(counts)
    edges = {
        v: gaussian_edges(*RANGES[v], gs_params[v]["mu"], gs_params[v]["sigma"], c[v])
        for v in (*TRANSLATION, *ROTATION)
    }
    return ActionGrid(c, edges, gs_params, "gaussian", **kw)


def uniform_grid(counts: dict | None = None, **kw) -> ActionGrid:
    c = _counts(counts)
    return ActionGrid(c, {v: uniform_edges(*RANGES[v], c[v]) for v in (*TRANSLATION, *ROTATION)}, {}, "uniform", **kw)


def empirical_edges(hist: np.ndarray, lo: float, hi: float, n: int) -> np.ndarray:
    """Edges at the weighted quantiles of a fine histogram over [lo, hi] (mass spread uniformly
    within each fine bin), so each of the n bins holds the same mass. Where the data has no
    mass between two quantiles the edges would coincide; they are kept strictly increasing by
    at least one fine bin so that no token is unreachable by construction."""
    fine = len(hist)
    cdf = np.concatenate([[0.0], np.cumsum(hist)])
    cdf /= cdf[-1]
    pos = np.interp(np.linspace(0, 1, n + 1), cdf, np.arange(fine + 1), left=0, right=fine)
    # interp on a flat CDF picks the first position; keep the bins apart
    for i in range(1, n + 1):
        pos[i] = max(pos[i], pos[i - 1] + 1.0)
    pos = np.minimum(pos, fine - (n - np.arange(n + 1)))
    pos[0], pos[-1] = 0, fine
    return lo + pos / fine * (hi - lo)


def empirical_grid(hists: dict, counts: dict | None = None, gs_params: dict | None = None, **kw) -> ActionGrid:
    c = _counts(counts)
    edges = {v: empirical_edges(hists[v], *RANGES[v], c[v]) for v in (*TRANSLATION, *ROTATION)}
    return ActionGrid(c, edges, gs_params or {}, "empirical", **kw)
