"""Normalized actions to look at or fit on: a .npy file [N, 7] or an export's shards.

export_fit reads an export's `episode_id` and `action` columns (one shard at a time) into the same
per-dataset FitAccumulators the run's grid fit builds from the source data, and weighs the datasets
the same way: the metrics of a grid on an export (grids.metrics.fit_metrics) are then those the run
wrote into the grid file, when the same datasets are scored.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from grids.fit import FitAccumulator, MixtureFit, mixture_fit, step_hashes
from shards.manifest import ManifestError, load_manifest, shard_path
from shards.schema import open_ipc
from storage import files

MAX_ROWS = 500_000


def _finite(a: np.ndarray, where: str) -> np.ndarray:
    """Actions with every value finite, or a one-line ValueError: a NaN or infinity would corrupt the fit
    (sums, histograms and quantiles all take it in)."""
    bad = ~np.isfinite(a)
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        raise ValueError(f"{where}: {int(bad.sum())} non-finite value(s) (NaN or infinity), the first in row {row}: "
                         "refused (fix or drop those rows)")  # fmt: skip
    return a


def _load_npy(path: str, max_rows: int) -> np.ndarray:
    """A .npy of normalized actions [N, 7] (memory-mapped when local, thinned evenly to about max_rows)."""
    local = files.local_path(path)
    try:
        if local is not None:
            files.open_file(local, "rb").close()  # a directory, FIFO or device: refused in one line
            a = np.load(local, mmap_mode="r", allow_pickle=False)
        else:
            with files.open_file(path, "rb") as f:
                a = np.load(f, allow_pickle=False)
    except files.StorageError:
        raise
    except Exception as e:  # numpy's many ways of saying "not an array file" (ValueError, EOFError, ...)
        raise ValueError(f"{path}: not a .npy array ({' '.join(str(e).split())[:200]})") from None
    if not isinstance(a, np.ndarray) or a.ndim != 2 or a.shape[1] != 7:
        raise ValueError(f"{path}: expected normalized actions [N, 7], got shape {getattr(a, 'shape', None)}")
    if a.dtype.kind not in "fiu":
        raise ValueError(f"{path}: expected numbers, got dtype {a.dtype}")
    stride = max(1, len(a) // max_rows)
    return _finite(np.asarray(a[::stride], np.float64), path)


def _weight(manifest: dict, path: str, name: str) -> float:
    w = manifest["effective_weights"].get(name)
    if not (isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) and w > 0):
        raise ValueError(f"{path}: manifest.json: effective_weights.{name} must be a positive number, got {w!r}")
    return float(w)


@dataclass
class ExportFit:
    fit: MixtureFit  # over `datasets`, weighted as `weights`
    parts: dict[str, FitAccumulator]  # per dataset (per-dataset histograms)
    datasets: list[str]
    steps: int  # rows read
    weights: dict[str, float]  # the effective weights the datasets were weighed with (sum to 1)


def read_manifest(path: str) -> dict:
    try:
        return load_manifest(path)
    except ManifestError as e:
        raise ValueError(f"{path}: not an output directory with a manifest ({e})") from None


def shard_actions(path: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(normalized actions [N, 7] float32, their steps' hashes [N]) of one shard (episode-contiguous rows)."""
    table = open_ipc(path, columns=["episode_id", "action"]).read_all()
    actions = table.column("action").combine_chunks().values.to_numpy(zero_copy_only=False).reshape(-1, 7)
    _finite(actions, f"{path}: action column")
    ids = np.asarray(table.column("episode_id").to_numpy(zero_copy_only=False), dtype=object)
    starts = np.concatenate([[0], np.flatnonzero(ids[1:] != ids[:-1]) + 1, [len(ids)]]) if len(ids) else [0]
    hashes = [step_hashes(ids[a], b - a, seed) for a, b in zip(starts[:-1], starts[1:])]
    return actions, np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)


def export_fit(out: str, datasets: list[str] | None = None, weights: dict[str, float] | None = None,
               on_shard: Callable[[str, int], None] | None = None,
               read: dict[str, FitAccumulator] | None = None) -> ExportFit:  # fmt: skip
    """The export's datasets (all, or `datasets`) accumulated as the run's grid fit does, each step
    weighing weights[d] / num_transitions[d] (default: the manifest's effective weights over the
    datasets read, renormalized). on_shard(dataset, rows) is called after each shard (progress).
    `read`: datasets' accumulators from an earlier call (`ExportFit.parts`), taken as they are
    instead of reading their shards again."""
    manifest = read_manifest(out)
    names = list(manifest["datasets"]) if datasets is None else [d for d in datasets]
    unknown = [n for n in names if n not in manifest["datasets"]]
    if unknown:
        raise ValueError(f"{out}: the export has no dataset '{unknown[0]}'")
    if weights is None:
        total = sum(_weight(manifest, out, n) for n in names)
        weights = {n: _weight(manifest, out, n) / total for n in names}
    seed = manifest.get("seed", 0)
    parts, steps = {}, 0
    for name in names:
        if read and name in read:
            parts[name] = read[name]
            steps += read[name].steps
            continue
        acc = FitAccumulator(seed)
        for s in manifest["datasets"][name]["shards"]:
            actions, hashes = shard_actions(shard_path(out, s), seed)
            acc.add_steps(actions, hashes)
            steps += len(actions)
            if on_shard:
                on_shard(name, len(actions))
        parts[name] = acc
    transitions = {n: manifest["datasets"][n]["num_transitions"] for n in names}
    step_weight = {n: weights[n] / transitions[n] if transitions[n] else 0.0 for n in names}
    try:
        fit = mixture_fit(parts, step_weight)
    except ValueError:
        raise ValueError(f"{out}: no actions in the shards of {', '.join(names)}") from None
    return ExportFit(fit, parts, names, steps, weights)


def load_actions(path: str, max_rows: int = MAX_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """(actions [N, 7], weights [N]): an export's steps weighted by the effective mixture weights,
    or a .npy array weighted equally. Large inputs are thinned to about max_rows, evenly. Non-finite
    actions or weights are refused (ValueError, one line)."""
    if path.endswith(".npy"):
        a = _load_npy(path, max_rows)
        return a, np.ones(len(a))
    try:
        manifest = load_manifest(path)
    except ManifestError as e:
        raise ValueError(f"{path}: neither a .npy file nor an output directory with a manifest ({e})") from None
    total = sum(d["num_transitions"] for d in manifest["datasets"].values())
    stride = max(1, total // max_rows)
    actions, weights = [], []
    for name, ds in manifest["datasets"].items():
        if not ds["shards"]:
            continue
        w = _weight(manifest, path, name)
        cols = [open_ipc(shard_path(path, s), columns=["action"]).read_all().column("action") for s in ds["shards"]]
        a = np.concatenate([c.combine_chunks().values.to_numpy(zero_copy_only=False) for c in cols]).reshape(-1, 7)[
            ::stride
        ]
        actions.append(_finite(a.astype(np.float64), f"{path}: dataset '{name}': action column"))
        weights.append(np.full(len(a), w / max(len(a), 1)))
    if not actions:
        raise ValueError(f"{path}: the export has no shards with actions")
    return np.concatenate(actions), np.concatenate(weights)
