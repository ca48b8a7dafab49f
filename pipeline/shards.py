"""The training-shard contract: Arrow IPC files of steps, and the manifest that lists them.

Imported by trainers: no Beam, no TensorFlow. Writes go through fsspec-free plain Python
file objects handed in by the caller (Beam's FileSystems in the pipeline).
"""
from __future__ import annotations

import hashlib
import json
import os

import pyarrow as pa

FORMAT_VERSION = 1
COMPRESSION = "zstd"


class ManifestError(ValueError):
    """A manifest whose shards are missing or changed; the message names the shard."""


def shard_schema(with_wrist: bool = False, with_depth: bool = False, with_text: bool = False) -> pa.Schema:
    fields = [
        pa.field("dataset", pa.string()),
        pa.field("episode_id", pa.string()),
        pa.field("step", pa.int32()),
        pa.field("is_first", pa.bool_()),
        pa.field("is_last", pa.bool_()),
        pa.field("language_instruction", pa.string()),
        pa.field("image", pa.binary()),  # JPEG
    ]
    if with_wrist:
        fields.append(pa.field("wrist_image", pa.binary()))
    fields += [
        pa.field("action", pa.list_(pa.float32(), 7)),  # normalized
        pa.field("raw_action", pa.list_(pa.float32(), 7)),
        pa.field("action_tokens", pa.list_(pa.int32(), 3)),
    ]
    if with_depth:
        fields.append(pa.field("depth", pa.binary()))  # 16-bit PNG, millimetres
    if with_text:
        fields.append(pa.field("input_ids", pa.list_(pa.int32())))  # the instruction, by --text-tokenizer
        fields.append(pa.field("action_input_ids", pa.list_(pa.int32(), 3)))  # <ACTIONnnnnn> ids of action_tokens
    return pa.schema(fields)


def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.arrow"


def plan_shards(episode_bytes: list[int], target_bytes: int) -> list[tuple[int, int]]:
    """Consecutive episode ranges [lo, hi) of about target_bytes each; an episode is never split."""
    groups, lo, size = [], 0, 0
    for i, b in enumerate(episode_bytes):
        if size and size + b > target_bytes:
            groups.append((lo, i))
            lo, size = i, 0
        size += b
    if lo < len(episode_bytes):
        groups.append((lo, len(episode_bytes)))
    return groups


def write_table(f, table: pa.Table, rows_per_batch: int = 1024) -> None:
    """An Arrow IPC file, zstd-compressed, in record batches of a fixed size (same bytes every time)."""
    options = pa.ipc.IpcWriteOptions(compression=COMPRESSION)
    table = table.replace_schema_metadata({"rows_per_batch": str(rows_per_batch)})  # readers locate rows with it
    with pa.ipc.new_file(f, table.schema, options=options) as w:
        w.write_table(table.combine_chunks(), max_chunksize=rows_per_batch)


def file_sha256(path: str, opener=open) -> str:
    h = hashlib.sha256()
    with opener(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def shard_rows(path: str) -> int:
    with pa.memory_map(path) as src:
        reader = pa.ipc.open_file(src)
        return sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))


def verify_manifest(out_dir: str, check_hashes: bool = True) -> dict:
    """The manifest of out_dir, after checking that every shard it lists is there, unchanged."""
    path = os.path.join(out_dir, "manifest.json")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except OSError:
        raise ManifestError(f"{path}: no manifest (the export did not finish?)") from None
    except json.JSONDecodeError as e:
        raise ManifestError(f"{path}: not valid JSON ({e.msg})") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ManifestError(f"{path}: format_version {manifest.get('format_version')!r}, this reader reads {FORMAT_VERSION}")
    for name, ds in manifest["datasets"].items():
        for s in ds["shards"]:
            shard = os.path.join(out_dir, s["path"])
            if not os.path.exists(shard):
                raise ManifestError(f"shard {s['path']} of dataset '{name}' is missing")
            size = os.path.getsize(shard)
            if size != s["bytes"]:
                raise ManifestError(f"shard {s['path']} of dataset '{name}' changed: {size} bytes, manifest says {s['bytes']}")
            if check_hashes and file_sha256(shard) != s["sha256"]:
                raise ManifestError(f"shard {s['path']} of dataset '{name}' changed: sha256 does not match the manifest")
    return manifest
