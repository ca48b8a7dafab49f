"""Hand-built exports for the reader's tests: shards written by the one writer (shards.schema.write_table)
and a manifest whose counts and weights are computed here, as the pipeline's export computes them."""

from __future__ import annotations

import io
import json
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image

from manifests.weights import effective_weights
from shards.schema import shard_name, shard_schema, write_table
from storage.files import sha256_file


def jpeg(value: int, size: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def write_shard(out: Path, path: Path, table: pa.Table, rows_per_batch: int = 1024) -> dict:
    """A shard at `path` and its manifest entry (counts, sha256, size and the checksum pin)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pins = write_table(f, table, rows_per_batch=rows_per_batch)
    is_last = table.column("is_last").to_numpy(zero_copy_only=False)
    return {
        "path": str(path.relative_to(out)),
        "num_rows": table.num_rows,
        "num_episodes": int(is_last.sum()),
        "sha256": sha256_file(str(path)),
        "bytes": path.stat().st_size,
        **pins,
    }


def write_manifest(out: Path, datasets: dict, weights: dict, columns: list[str] | None = None, **extra) -> dict:
    """manifest.json for `datasets` ({name: {"shards": [entries], ...}}): counts from the shards,
    effective and unbalanced weights, the mixture's columns (given, or of the default schema)."""
    for ds in datasets.values():
        ds["num_transitions"] = sum(s["num_rows"] for s in ds["shards"])
        ds["num_trajectories"] = sum(s["num_episodes"] for s in ds["shards"])
    transitions = {n: d["num_transitions"] for n, d in datasets.items()}
    manifest = {
        "format_version": 1,
        "mixture": "test",
        "weights": weights,
        "effective_weights": effective_weights(weights, transitions),
        "unbalanced_weights": effective_weights(weights, transitions, balance=False),
        "datasets": datasets,
        "columns": sorted(columns or shard_schema().names),
        **extra,
    }
    (out / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def steps_table(
    dataset: str,
    lengths: list[int],
    shard: int = 0,
    wrist: bool = False,
    image_bytes: int = 0,
    text: bool = False,
    proprio: int = 0,
) -> pa.Table:
    """Rows of episodes of `lengths` steps; image: a tiny JPEG, or `image_bytes` random bytes (size tests);
    text: input_ids of 2 + (step % 3) tokens; proprio: that many dims, all equal to the step."""
    rng = np.random.default_rng([zlib.crc32(dataset.encode()), shard])
    schema = shard_schema(with_wrist=wrist, with_text=text, proprio_dim=proprio)
    rows: dict = {k: [] for k in schema.names}
    for e, t in enumerate(lengths):
        for s in range(t):
            rows["dataset"].append(dataset)
            rows["episode_id"].append(f"{dataset}-{shard}#{e}")
            rows["step"].append(s)
            rows["is_first"].append(s == 0)
            rows["is_last"].append(s == t - 1)
            rows["language_instruction"].append(f"task {dataset}")
            rows["image"].append(rng.bytes(image_bytes) if image_bytes else jpeg(s * 10 % 250))
            if wrist:
                rows["wrist_image"].append(jpeg(200))
            rows["action"].append([e, s, 0.5, 0, 0, 0, float(s % 2)])
            rows["raw_action"].append([e, s, 0.5, 0, 0, 0, float(s % 2)])
            rows["action_tokens"].append([s % 4096, 4096, 8193])
            if proprio:
                rows["proprio"].append([float(s)] * proprio)
            if text:
                rows["input_ids"].append(list(range(7, 9 + s % 3)))
                rows["action_input_ids"].append([s, 1, 2])
    return pa.Table.from_pydict(rows, schema=schema)


def build_export(
    out: Path,
    episodes: dict[str, list[list[int]]],
    weights: dict,
    wrist: tuple = (),
    rows_per_batch: int = 1024,
    image_bytes: int = 0,
    text: bool = False,
    proprio: dict | None = None,
    **extra,
) -> dict:
    """An export of `episodes` ({dataset: [[steps per episode] per shard]}); datasets in `wrist` have a
    wrist camera. Returns the manifest."""
    datasets = {}
    for name, shards in episodes.items():
        entries = []
        for i, lengths in enumerate(shards):
            table = steps_table(name, lengths, i, name in wrist, image_bytes, text, (proprio or {}).get(name, 0))
            path = out / "shards" / name / shard_name("train", i, len(shards))
            entries.append(write_shard(out, path, table, rows_per_batch))
        datasets[name] = {"shards": entries, "has_wrist_image": name in wrist}
    columns = shard_schema(with_wrist=bool(wrist), with_text=text, proprio_dim=int(bool(proprio))).names
    return write_manifest(out, datasets, weights, columns, **extra)
