"""Normalized actions to look at or fit on: a .npy file [N, 7] or an export's shards (sampled)."""

from __future__ import annotations

import numpy as np

from shards.manifest import ManifestError, load_manifest, shard_path
from shards.schema import open_ipc
from storage import files

MAX_ROWS = 500_000


def load_actions(path: str, max_rows: int = MAX_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """(actions [N, 7], weights [N]): an export's steps weighted by the effective mixture weights,
    or a .npy array weighted equally. Large exports are thinned to about max_rows, evenly."""
    if path.endswith(".npy"):
        with files.open_file(path, "rb") as f:
            a = np.load(f)
        if a.ndim != 2 or a.shape[1] != 7:
            raise ValueError(f"{path}: expected normalized actions [N, 7], got shape {a.shape}")
        return a.astype(np.float64), np.ones(len(a))
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
        cols = [open_ipc(shard_path(path, s), columns=["action"]).read_all().column("action") for s in ds["shards"]]
        a = np.concatenate([c.combine_chunks().values.to_numpy(zero_copy_only=False) for c in cols]).reshape(-1, 7)[
            ::stride
        ]
        actions.append(a)
        weights.append(np.full(len(a), manifest["effective_weights"][name] / max(len(a), 1)))
    return np.concatenate(actions).astype(np.float64), np.concatenate(weights)
