"""The training shards: Arrow IPC files of steps, one row per step, episode-contiguous.

Imported by trainers: no Beam, no TensorFlow. Writers hand in a file object (storage.files).
"""

from __future__ import annotations

import json

import pyarrow as pa

from storage import files

COMPRESSION = "zstd"
IMAGE_COLUMNS = ("image", "wrist_image", "depth")  # encoded images (JPEG; depth: 16-bit PNG)


def shard_schema(
    with_wrist: bool = False,
    with_depth: bool = False,
    with_text: bool = False,
    with_camera: bool = False,
    with_sampled: bool = False,
    proprio_dim: int = 0,
) -> pa.Schema:
    fields = [
        pa.field("dataset", pa.string()),
        pa.field("episode_id", pa.string()),
        pa.field("step", pa.int32()),
        pa.field("is_first", pa.bool_()),
        pa.field("is_last", pa.bool_()),
        pa.field("language_instruction", pa.string()),
        pa.field("image", pa.binary()),  # JPEG
    ]
    if with_camera:
        fields.append(pa.field("camera", pa.string()))  # which camera `image` is (a dataset with a choice: DROID)
    if with_sampled:
        fields.append(pa.field("sampled", pa.bool_()))  # False: in action chunks only, never a training sample
    if with_wrist:
        fields.append(pa.field("wrist_image", pa.binary()))
    fields += [
        pa.field("action", pa.list_(pa.float32(), 7)),  # normalized
        pa.field("raw_action", pa.list_(pa.float32(), 7)),
        pa.field("action_tokens", pa.list_(pa.int32(), 3)),
    ]
    if proprio_dim:  # the standardized proprio (not normalized), where the registry names proprio keys
        fields.append(pa.field("proprio", pa.list_(pa.float32(), proprio_dim)))
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


def hf_feature(name: str, type_: pa.DataType) -> dict:
    """A column's Hugging Face `datasets` feature, as its Features.to_dict() writes it."""
    if name in IMAGE_COLUMNS:
        return {"_type": "Image"}  # stored as bytes: datasets decodes them to PIL images
    if pa.types.is_fixed_size_list(type_) or pa.types.is_list(type_):
        length = {"length": type_.list_size} if pa.types.is_fixed_size_list(type_) else {}
        return {"feature": hf_feature("", type_.value_type), **length, "_type": "Sequence"}
    return {"dtype": {"float": "float32", "double": "float64"}.get(str(type_), str(type_)), "_type": "Value"}


def hf_metadata(schema: pa.Schema) -> str:
    """The schema metadata `datasets` reads its features from (load_dataset("arrow", ...))."""
    features = {f.name: hf_feature(f.name, f.type) for f in schema}
    return json.dumps({"info": {"features": features}})  # in the columns' order


def write_table(f, table: pa.Table, rows_per_batch: int = 1024) -> None:
    """An Arrow IPC file, zstd-compressed, in record batches of a fixed size (same bytes every time)."""
    options = pa.ipc.IpcWriteOptions(compression=COMPRESSION)
    # rows_per_batch: readers locate rows with it; huggingface: Hugging Face datasets' features
    table = table.replace_schema_metadata(
        {"rows_per_batch": str(rows_per_batch), "huggingface": hf_metadata(table.schema)}
    )
    with pa.ipc.new_file(f, table.schema, options=options) as w:
        w.write_table(table.combine_chunks(), max_chunksize=rows_per_batch)


def shard_rows(f) -> int:
    """Rows of an Arrow IPC file, from a file object open for reading."""
    reader = pa.ipc.open_file(f)
    return sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))


def open_ipc(path: str, columns: list[str] | None = None) -> pa.RecordBatchFileReader:
    """An Arrow IPC file for random access: memory-mapped when local, through storage.files otherwise;
    `columns`: read (and decompress) only these."""
    source = pa.memory_map(path) if files.local_path(path) else files.open_file(path, "rb")
    if columns is None:
        return pa.ipc.open_file(source)
    names = pa.ipc.open_file(source).schema.names
    return pa.ipc.open_file(source, options=pa.ipc.IpcReadOptions(included_fields=[names.index(c) for c in columns]))
