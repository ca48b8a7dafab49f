"""Normalized actions to look at or fit on: a .npy file [N, 7] or an export's shards (sampled)."""
from __future__ import annotations

import json
import os

import numpy as np

MAX_ROWS = 500_000


def load_actions(path: str, max_rows: int = MAX_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """(actions [N, 7], weights [N]): an export's steps weighted by the effective mixture weights,
    or a .npy array weighted equally. Large exports are thinned to about max_rows, evenly."""
    if path.endswith(".npy"):
        a = np.load(path)
        if a.ndim != 2 or a.shape[1] != 7:
            raise ValueError(f"{path}: expected normalized actions [N, 7], got shape {a.shape}")
        return a.astype(np.float64), np.ones(len(a))
    manifest_path = os.path.join(path, "manifest.json")
    if not os.path.exists(manifest_path):
        raise ValueError(f"{path}: neither a .npy file nor an output directory with manifest.json")
    import pyarrow.dataset as pads

    with open(manifest_path) as f:
        manifest = json.load(f)
    total = sum(d["num_transitions"] for d in manifest["datasets"].values())
    stride = max(1, total // max_rows)
    actions, weights = [], []
    for name, ds in manifest["datasets"].items():
        files = [os.path.join(path, s["path"]) for s in ds["shards"]]
        if not files:
            continue
        col = pads.dataset(files, format="ipc").to_table(columns=["action"]).column("action").combine_chunks()
        a = col.values.to_numpy(zero_copy_only=False).reshape(-1, 7)[::stride]
        actions.append(a)
        weights.append(np.full(len(a), manifest["effective_weights"][name] / max(len(a), 1)))
    return np.concatenate(actions).astype(np.float64), np.concatenate(weights)
