"""The training shards: Arrow IPC files of steps, one row per step, episode-contiguous.

Imported by trainers: no Beam, no TensorFlow. Writers hand in a file object (storage.files).
`write_table` is the one writer of shards: it stores, in the schema metadata, the record batches'
size (rows_per_batch), their Hugging Face features, and their checksum table (shards.integrity),
and returns what the manifest pins of the shard besides its sha256. `ShardFile` is the one checked
reader of a shard.
"""

from __future__ import annotations

import bisect
import json

import numpy as np
import pyarrow as pa

from shards.integrity import (
    METADATA_KEY,
    PIN_KEY,
    ChecksumTable,
    IntegrityError,
    batch_digests,
    checked_binary,
    encode_table,
    fusable,
    pin,
)
from shards.manifest import ManifestError
from storage import files

COMPRESSION = "zstd"
IMAGE_COLUMNS = ("image", "wrist_image", "depth")  # encoded images (JPEG; depth: 16-bit PNG)
REQUIRED_COLUMNS = {"dataset", "episode_id", "step", "is_first", "is_last", "language_instruction", "image", "action"}
SMALL_COLUMNS = ["is_last", "language_instruction", "dataset"]  # what checking a shard's rows reads


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


def write_table(f, table: pa.Table, rows_per_batch: int = 1024) -> dict:
    """An Arrow IPC file, zstd-compressed, in record batches of a fixed size (same bytes every time),
    with a checksum per record batch and column. Returns the manifest's pin of the checksum table
    ({"checksums_sha256": ...}), to be recorded beside the shard's sha256 and size."""
    options = pa.ipc.IpcWriteOptions(compression=COMPRESSION)
    table = table.combine_chunks()
    batches = table.to_batches(max_chunksize=rows_per_batch)  # the slicing write_table(max_chunksize=) does
    checksums = encode_table(table.schema.names, [b.num_rows for b in batches], [batch_digests(b) for b in batches])
    # rows_per_batch: readers locate rows with it; huggingface: Hugging Face datasets' features;
    # checksums: verified by readers as they read each batch (shards.integrity)
    schema = table.schema.with_metadata(
        {"rows_per_batch": str(rows_per_batch), "huggingface": hf_metadata(table.schema), METADATA_KEY: checksums}
    )
    with pa.ipc.new_file(f, schema, options=options) as w:
        for batch in batches:
            w.write_batch(batch)
    return {PIN_KEY: pin(checksums)}


def shard_rows(f) -> int:
    """Rows of an Arrow IPC file, from a file object open for reading."""
    reader = pa.ipc.open_file(f)
    return sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))


def open_ipc(path: str, columns: list[str] | None = None) -> pa.RecordBatchFileReader:
    """An Arrow IPC file for random access: memory-mapped when local, through storage.files otherwise;
    `columns`: read (and decompress) only these."""
    local = files.local_path(path)
    source = pa.memory_map(local) if local else files.open_file(path, "rb")
    if columns is None:
        return pa.ipc.open_file(source)
    names = pa.ipc.open_file(source).schema.names
    return pa.ipc.open_file(source, options=pa.ipc.IpcReadOptions(included_fields=[names.index(c) for c in columns]))


def checksums_pin(path: str) -> str | None:
    """The manifest's pin of a written shard's checksum table (its footer only is read), None without one."""
    raw = (open_ipc(path).schema.metadata or {}).get(METADATA_KEY)
    return None if raw is None else pin(raw)


class ShardFile:
    """One shard of an export opened for reading, checked against its manifest entry (`expect`: bytes,
    num_rows, sha256 and, for shards written with checksums, checksums_sha256).

    At open: the file exists with the manifest's size; its checksum table matches the manifest's pin
    (verify=True). As each record batch is read: every column read against the table (verify=True).
    A shard without a checksum table (written before them) is hashed whole at open instead (sha256:
    it costs one read of the shard). `where` names the shard in every error (one line)."""

    def __init__(self, path: str, expect: dict, where: str, verify: bool = True, data: pa.Buffer | None = None):
        self.path, self.where, self.verify = path, where, verify
        try:
            size = files.size(path) if data is None else data.size
        except FileNotFoundError:
            raise IntegrityError(f"{where}: missing") from None
        except OSError as e:
            raise IntegrityError(f"{where}: cannot be opened ({e})") from None
        if "bytes" in expect and size != expect["bytes"]:
            raise IntegrityError(
                f"{where}: {size} bytes, the manifest says {expect['bytes']} (changed since the export)"
            )
        local = files.local_path(path)
        if data is not None:  # the file's bytes, already read (shards.verify hashes them too)
            self.source = pa.BufferReader(data)
        else:
            self.source = pa.memory_map(local) if local else files.open_file(path, "rb")
        try:
            self.reader = pa.ipc.open_file(self.source)
            self.names = self.reader.schema.names
            meta = self.reader.schema.metadata or {}
        except (pa.ArrowException, OSError, UnicodeDecodeError) as e:  # names are decoded as UTF-8
            raise IntegrityError(f"{where}: not a readable Arrow IPC file ({str(e).splitlines()[0]})") from None
        table = ChecksumTable.of(meta, expect.get(PIN_KEY) if verify else None, where)
        if verify and table is None and data is None and files.sha256_file(path) != expect.get("sha256"):
            raise IntegrityError(f"{where}: sha256 does not match the manifest (changed since the export)")
        self.checksums = table if verify else None  # checked batch by batch
        if verify:
            self._check_head(size)
        n = self.reader.num_record_batches
        if table is not None:
            self.offsets = table.offsets
            if len(self.offsets) != n + 1:
                raise IntegrityError(f"{where}: {n} record batches, its checksum table lists {len(self.offsets) - 1}")
        elif b"rows_per_batch" in meta:  # fixed-size batches, the last shorter (row count: from the rows read)
            self.offsets = np.arange(n + 1) * int(meta[b"rows_per_batch"])
        else:
            self.offsets = np.concatenate([[0], np.cumsum([self.reader.get_batch(i).num_rows for i in range(n)])])
        self.starts = self.offsets.tolist()  # for bisect: faster than numpy for one row at a time
        self._readers: dict = {None: self.reader}

    def _read_at(self, offset: int, n: int) -> bytes:
        if isinstance(self.source, pa.NativeFile):
            return bytes(self.source.read_at(n, offset))
        self.source.seek(offset)
        return self.source.read(n)

    def _check_head(self, size: int) -> None:
        """The file's leading copy of the schema (the stream format's, which file readers skip: they read
        the footer's) equals the footer's, metadata and checksum table included."""
        head = self._read_at(0, 16)
        length = int.from_bytes(head[12:16], "little", signed=True) if len(head) == 16 else -1
        ok = head[:6] == b"ARROW1" and head[8:12] == b"\xff\xff\xff\xff" and 0 < length <= size - 16
        try:
            ok = ok and pa.ipc.read_schema(pa.py_buffer(self._read_at(8, 8 + length))).equals(
                self.reader.schema, check_metadata=True
            )
        except (pa.ArrowException, OSError, UnicodeDecodeError):
            ok = False
        if not ok:
            raise IntegrityError(f"{self.where}: its leading schema does not match its footer (corrupt)")

    def _reader_of(self, columns: tuple | None):
        if columns not in self._readers:
            missing = sorted(set(columns) - set(self.names))
            if missing:
                raise IntegrityError(f"{self.where}: no column(s) {missing}")
            options = pa.ipc.IpcReadOptions(included_fields=[self.names.index(c) for c in columns])
            self._readers[columns] = pa.ipc.open_file(self.source, options=options)
        return self._readers[columns]

    def batch_of(self, row: int) -> int:
        return bisect.bisect_right(self.starts, row) - 1

    def read_batch(self, b: int, columns: list[str] | None = None, fused: bool = False) -> pa.RecordBatch:
        """Record batch b (only `columns`, in the file's order, when given), each column checked; with
        `fused`, the binary columns are left for the caller to check as it converts them (read_values)."""
        reader = self._reader_of(None if columns is None else tuple(c for c in self.names if c in set(columns)))
        try:
            batch = reader.get_batch(b)
        except (pa.ArrowException, OSError, MemoryError) as e:
            what = self.checksums.describe(b) if self.checksums else f"record batch {b}"
            raise IntegrityError(f"{self.where}: {what} cannot be read ({str(e).splitlines()[0]})") from None
        if self.checksums is not None:
            skip = tuple(n for n, c in zip(batch.schema.names, batch.columns) if fused and fusable(c))
            self.checksums.check(b, batch, self.where, skip)
        return batch

    def read_values(self, b: int, name: str, column: pa.Array) -> list:
        """A column of record batch b read with `fused`, as python objects, checked as it is converted."""
        if self.checksums is None or not fusable(column):
            return column.to_pylist()
        values = checked_binary(column, self.checksums.expected(b, name, self.where))
        if values is None:
            self.checksums.mismatch(b, name, self.where)
        return values

    def read(self, columns: list[str] | None = None) -> pa.Table:
        """Every record batch (of `columns`), each checked."""
        batches = [self.read_batch(b, columns) for b in range(len(self.offsets) - 1)]
        if batches:
            return pa.Table.from_batches(batches)
        schema = self.reader.schema
        return (
            schema.empty_table()
            if columns is None
            else schema.empty_table().select([c for c in self.names if c in set(columns)])
        )


def check_shard(where: str, names: list[str], small: pa.Table, entry: dict, dataset: str, listed: list | None) -> None:
    """A shard's contents against its manifest entry, from its column names and SMALL_COLUMNS (`small`):
    the required columns and no column the manifest does not list (`listed`), its rows, its episodes,
    and only rows of its own dataset (a valid shard of another dataset swapped in is refused)."""
    missing = sorted(REQUIRED_COLUMNS - set(names))
    unknown = sorted(set(names) - set(listed or names))
    if missing or unknown:
        raise ManifestError(
            f"{where}: " + (f"no column(s) {missing}" if missing else f"column(s) {unknown} the manifest does not list")
        )
    if small.num_rows != entry["num_rows"]:
        raise ManifestError(f"{where}: {small.num_rows} rows, the manifest says {entry['num_rows']}")
    others = set(small.column("dataset").unique().to_pylist()) - {dataset}
    if others:
        raise ManifestError(f"{where}: rows of dataset(s) {sorted(others)}, the manifest lists it under '{dataset}'")
    is_last = small.column("is_last").to_numpy(zero_copy_only=False)
    episodes = int(is_last.sum()) + int(len(is_last) > 0 and not is_last[-1])
    if "num_episodes" in entry and episodes != entry["num_episodes"]:
        raise ManifestError(f"{where}: {episodes} episodes, the manifest says {entry['num_episodes']}")
