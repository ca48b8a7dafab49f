"""An export's shards as a Hugging Face `datasets.Dataset`, images decoded to PIL images.

    from shards.huggingface import load_export
    ds = load_export("output/bridge", "bridge_orig")      # memory-mapped, cached by `datasets`
    ds[0]["image"]                                         # a PIL image; "action": 7 floats

Shards are Arrow IPC *files* (random access for the trainer's reader); `datasets.Dataset.from_file`
reads only the IPC *stream* format, so it cannot open them. `datasets.load_dataset("arrow", ...)`
can, and with the features each shard carries in its schema metadata (shards.schema.hf_metadata)
the encoded image columns become `Image` features; this is that one call. `datasets` is imported
here only (an optional dependency).
"""

from __future__ import annotations

import json

from shards.manifest import ManifestError, export_dir, load_manifest, shard_path
from shards.schema import open_ipc


def load_export(export: str, dataset: str, **load_kwargs):
    """One dataset of an export (its directory or manifest.json) as a `datasets.Dataset`, rows in
    shard order; `load_kwargs` go to `datasets.load_dataset` (e.g. cache_dir, num_proc)."""
    import datasets

    out = export_dir(export)
    manifest = load_manifest(out)
    if dataset not in manifest["datasets"]:
        raise ManifestError(f"{out}: no dataset '{dataset}' (it has {sorted(manifest['datasets'])})")
    paths = [shard_path(out, s) for s in manifest["datasets"][dataset]["shards"]]
    if not paths:
        raise ManifestError(f"{out}: dataset '{dataset}' has no shards")
    metadata = open_ipc(paths[0]).schema.metadata or {}
    if b"huggingface" not in metadata:
        raise ManifestError(f"{paths[0]}: no Hugging Face features in its schema (written by an older version)")
    features = datasets.Features.from_dict(json.loads(metadata[b"huggingface"])["info"]["features"])
    return datasets.load_dataset("arrow", data_files=paths, split="train", features=features, **load_kwargs)
