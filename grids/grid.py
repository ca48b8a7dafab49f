"""The adaptive action grid: equal-probability bins per variable, and its JSON file.

A grid file means to this pipeline exactly what it means to a released SpatialVLA
checkpoint: the same `num_bins`, `gs_params` and `bin_policy` layout, the same edge formula
ppf(linspace(cdf(lo), cdf(hi), n + 1)) clipped to [lo, hi].
"""

from __future__ import annotations

import json
import math
import os
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
        """A grid from its JSON layout, every field checked (check_grid_json): a GridFileError names the
        file and the key, so that a grid that is accepted always yields tokens in [0, total_tokens)."""
        counts, edges, gs_params = check_grid_json(doc, source)
        return cls(
            counts,
            edges,
            gs_params,
            doc.get("distribution", "gaussian"),
            doc.get("provenance", {}),
            doc.get("metrics"),
        )

    @classmethod
    def load(cls, path: str) -> ActionGrid:
        try:
            text = files.read_text(path, max_bytes=MAX_GRID_BYTES, what="grid file")
        except files.StorageError as e:  # a directory, FIFO, device, non-UTF-8 or oversized file: one line
            raise GridFileError(f"{e}{_grid_file_hint(path)}") from None
        except OSError as e:
            raise GridFileError(f"{path}: cannot read ({e.strerror or e})") from None
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise GridFileError(f"{path}: not JSON ({e.msg} at line {e.lineno})") from None
        except RecursionError:
            raise GridFileError(f"{path}: not a grid file (nested too deeply)") from None
        if not isinstance(doc, dict):
            raise GridFileError(f"{path}: not a grid file (expected a JSON object)")
        return cls.from_json(doc, path)


def _grid_file_hint(path: str) -> str:
    """For an output directory given where its grid file is meant: which file to give."""
    local = files.local_path(path)
    if local is None or not os.path.isdir(local):
        return ""
    grids = os.path.join(local, "grids")
    found = sorted(f for f in os.listdir(grids) if f.endswith(".json")) if os.path.isdir(grids) else []
    grid = os.path.join(grids, found[0] if len(found) == 1 else "<mixture>.json")
    return f"; give the grid file {grid}"


MAX_GRID_BYTES = 64 << 20  # a grid file is kilobytes (megabytes with metrics); more is a wrong path
# SpatialVLA's action vocabulary: 4096 translation tokens, 4096 rotation tokens, 2 gripper tokens
MAX_TRANSLATION_TOKENS = 4096
MAX_ROTATION_TOKENS = 4096
GRIPPER_BINS = 2  # the gripper token is g >= 0.5: exactly two
DISTRIBUTIONS = ("gaussian", "empirical", "uniform")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _bin_count(value, where: str) -> int:
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        raise GridFileError(f"{where} must be a whole number of bins >= 1, got {str(value)[:40]}")
    return value


def check_grid_json(doc: dict, source: str) -> tuple[dict, dict, dict]:
    """(counts, edges, gs_params) of a grid file, or a GridFileError naming the file and the key: bin counts
    whole numbers whose tokens fit SpatialVLA's vocabulary (<= 4096 translation, <= 4096 rotation, 2
    gripper; `total` if given equal to their sum), one more edge than bins per variable, every edge finite,
    non-decreasing and within the variable's range, gs_params finite with sigma > 0."""

    def section(parent, key, where, kind=dict):
        if not isinstance(parent, dict) or key not in parent:
            raise GridFileError(f"{source}: not a grid file (missing '{where}')")
        if not isinstance(parent[key], kind):
            raise GridFileError(
                f"{source}: not a grid file ('{where}' must be a {'mapping' if kind is dict else 'list'})"
            )
        return parent[key]

    nb = section(doc, "num_bins", "num_bins")
    policy = section(doc, "bin_policy", "bin_policy")
    counts, edges = {}, {}
    for group, names in (("translation", TRANSLATION), ("rotation", ROTATION)):
        nb_group = section(nb, group, f"num_bins.{group}")
        policy_group = section(policy, group, f"bin_policy.{group}")
        for v in names:
            key = f"{v}_bins"
            counts[v] = _bin_count(section(nb_group, key, f"num_bins.{group}.{key}", object),
                                   f"{source}: num_bins.{group}.{key}")  # fmt: skip
            raw = section(policy_group, key, f"bin_policy.{group}.{key}", list)
            where = f"{source}: bin_policy.{group}.{key}"
            if not all(_is_number(x) for x in raw):
                raise GridFileError(f"{where}: edges must be numbers")
            e = np.asarray(raw, np.float64)
            if len(e) != counts[v] + 1:
                raise GridFileError(f"{where} has {len(e)} edges, num_bins.{group}.{key} says {counts[v]} bins")
            lo, hi = RANGES[v]
            slack = 1e-9 * (hi - lo)
            if not np.isfinite(e).all():
                raise GridFileError(f"{where}: edges must be finite numbers (found NaN or infinity)")
            if (np.diff(e) < 0).any():
                i = int(np.flatnonzero(np.diff(e) < 0)[0])
                raise GridFileError(f"{where}: edges must not decrease (edge {i + 1} < edge {i})")
            if e[0] < lo - slack or e[-1] > hi + slack:
                raise GridFileError(f"{where}: edges must lie within {v}'s range [{lo:.6g}, {hi:.6g}], "
                                    f"got [{e[0]:.6g}, {e[-1]:.6g}]")  # fmt: skip
            edges[v] = np.clip(e, lo, hi)
    counts["gripper"] = GRIPPER_BINS
    if "gripper" in nb and nb["gripper"] != GRIPPER_BINS or isinstance(nb.get("gripper"), bool):
        raise GridFileError(f"{source}: num_bins.gripper must be {GRIPPER_BINS} (the gripper token is open/closed), "
                            f"got {str(nb['gripper'])[:40]}")  # fmt: skip
    translation = counts["theta"] * counts["phi"] * counts["r"]
    rotation = counts["roll"] * counts["pitch"] * counts["yaw"]
    if translation > MAX_TRANSLATION_TOKENS or rotation > MAX_ROTATION_TOKENS:
        raise GridFileError(
            f"{source}: num_bins give {translation} translation and {rotation} rotation tokens; SpatialVLA's action "
            f"vocabulary has {MAX_TRANSLATION_TOKENS} and {MAX_ROTATION_TOKENS} (8194 action tokens in all)"
        )
    total = translation + rotation + GRIPPER_BINS
    if "total" in nb and (not _is_number(nb["total"]) or nb["total"] != total):
        raise GridFileError(f"{source}: num_bins.total is {str(nb['total'])[:40]}, the bins make {total} tokens")
    if not isinstance(doc.get("use_spherical", True), bool):
        raise GridFileError(f"{source}: use_spherical must be true or false")
    if not doc.get("use_spherical", True):
        raise GridFileError(f"{source}: only spherical translation grids are supported (use_spherical is false)")
    distribution = doc.get("distribution", "gaussian")
    if distribution not in DISTRIBUTIONS:
        raise GridFileError(
            f"{source}: distribution must be one of {', '.join(DISTRIBUTIONS)}, got {str(distribution)[:40]}"
        )
    for key, kind in (("provenance", dict), ("metrics", (dict, type(None)))):
        if key in doc and not isinstance(doc[key], kind):
            raise GridFileError(f"{source}: '{key}' must be a mapping")
    gs = doc.get("gs_params", {})
    if not isinstance(gs, dict):
        raise GridFileError(f"{source}: 'gs_params' must be a mapping of variable to {{mu, sigma}}")
    gs_params = {}
    for v, p in gs.items():
        where = f"{source}: gs_params.{v}"
        if v not in VARIABLES:
            raise GridFileError(f"{where}: unknown variable (known: {', '.join(VARIABLES)})")
        if not (isinstance(p, dict) and _is_number(p.get("mu")) and _is_number(p.get("sigma"))):
            raise GridFileError(f'{where} must be {{"mu": number, "sigma": number}}')
        if not (math.isfinite(p["mu"]) and math.isfinite(p["sigma"])):
            raise GridFileError(f"{where}: mu and sigma must be finite")
        if p["sigma"] <= 0:
            raise GridFileError(f"{where}: sigma must be > 0, got {p['sigma']}")
        gs_params[v] = {"mu": float(p["mu"]), "sigma": float(p["sigma"])}
    return counts, edges, gs_params


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
