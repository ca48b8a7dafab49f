"""Checksums of a shard's record batches, one per column, verified as the reader reads them.

The trust chain, from what the user trusts to what the trainer gets:

    manifest.json                     the root: per shard its sha256 and size (the whole file) and
      shards[i].checksums_sha256      the sha256 of the shard's checksum table
    shard schema metadata "checksums" the table: per record batch, its rows and per column the
                                      xxh3-64 of the column's values (the table's own bytes are pinned above)
    record batch b, column c          hashed as it is read, against the table

The reader checks the table against the manifest when it opens a shard (a few hundred bytes) and each
column of a record batch when it reads that batch, so integrity costs what is read: the columns a
reader asks for, when it asks. `python -m shards.verify OUT` checks everything else once (every byte
of every shard against the manifest's sha256, every column of every batch).

Why the values and not the file's bytes: pyarrow reads (and decompresses) only the columns asked for,
from byte ranges it does not expose; hashing the values it hands back covers exactly what reaches the
trainer, whatever the file source (a memory map, an object store). A corrupted byte in a column that
is read changes its values (or makes it unreadable): refused with the shard, batch and column named.
Bytes that no reader interprets (alignment padding, the stream-format schema copy at the file's
start, columns not asked for) cannot reach a trainer; `shards.verify` still finds them.

xxh3-64 (the `xxhash` package, ~30 GB/s on one core) and not sha256 (~1.8 GB/s): the reader's own
cost is ~1 ms per 10 MB record batch, which sha256 would turn into a ~10% tax on reading. It detects
corruption (disks, copies, truncation, a shard swapped for another); against someone who can write
the files and forge xxh3 collisions, the manifest's sha256 (`shards.verify`) is the check.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pyarrow as pa
import xxhash

from shards.manifest import ManifestError

ALGORITHM = "xxh3_64"
METADATA_KEY = b"checksums"  # in the schema metadata of every shard written by shards.schema.write_table
PIN_KEY = "checksums_sha256"  # in the manifest's shard entries: sha256 of the table's bytes


class IntegrityError(ManifestError):
    """Bytes that are not what the export wrote; the message names the shard (and batch, column)."""


_PRIMITIVE, _BOOLEAN, _BINARY, _FIXED_LIST, _LIST, _OTHER = range(6)
_KINDS: dict = {}  # DataType -> (kind, byte width of its offsets or values, list size)


def _kind(t: pa.DataType) -> tuple:
    if t not in _KINDS:
        if pa.types.is_boolean(t):
            kind = (_BOOLEAN, 0, 0)
        elif pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_temporal(t):
            kind = (_PRIMITIVE, t.bit_width // 8, 0)
        elif pa.types.is_binary(t) or pa.types.is_string(t):
            kind = (_BINARY, 4, 0)
        elif pa.types.is_large_binary(t) or pa.types.is_large_string(t):
            kind = (_BINARY, 8, 0)
        elif pa.types.is_fixed_size_list(t):
            kind = (_FIXED_LIST, 0, t.list_size)
        elif pa.types.is_list(t):
            kind = (_LIST, 4, 0)
        elif pa.types.is_large_list(t):
            kind = (_LIST, 8, 0)
        else:
            kind = (_OTHER, 0, 0)
        _KINDS[t] = kind
    return _KINDS[t]


def _rebased(buf, offset: int, n: int, width: int) -> tuple[bytes | memoryview, int, int]:
    """The n + 1 value offsets of a binary or list array as they would start from 0 (the bytes a
    file holds for them), and the first and end positions of its values."""
    view = memoryview(buf)[offset * width : (offset + n + 1) * width]
    first = int.from_bytes(view[:width], "little", signed=True)
    end = int.from_bytes(view[n * width :], "little", signed=True)
    if first == 0:  # as read back from a file: the offsets as they are
        return view, first, end
    o = np.frombuffer(view, dtype=np.int32 if width == 4 else np.int64)
    return (o - o[0]).tobytes(), first, end


def _update(h, arr: pa.Array) -> None:
    """Feed the values of `arr` to `h` in a canonical form: the same for a slice of an in-memory array
    (what the writer has) and for the same rows read back from the file (offset 0, rebased offsets)."""
    kind, width, size = _kind(arr.type)
    n, off, nulls = len(arr), arr.offset, arr.null_count
    h.update(b"%d,%d;" % (n, nulls))
    if nulls:  # rare (no column the pipeline writes has nulls): python objects, no pyarrow.compute import
        h.update(bytes(v is not None for v in arr.to_pylist()))
    if kind == _PRIMITIVE:
        h.update(memoryview(arr.buffers()[1])[off * width : (off + n) * width])
    elif kind == _BOOLEAN:  # the bits, packed from the first row, unused bits of the last byte zero
        if nulls:
            h.update(np.packbits([v is True for v in arr.to_pylist()], bitorder="little").tobytes())
        elif off % 8 == 0:  # as read back, and most slices: the bitmap's own bytes
            bits = bytearray(memoryview(arr.buffers()[1])[off // 8 : off // 8 + (n + 7) // 8])
            if n % 8:
                bits[-1] &= (1 << (n % 8)) - 1
            h.update(bits)
        else:
            h.update(np.packbits(arr.to_numpy(zero_copy_only=False), bitorder="little").tobytes())
    elif kind == _BINARY:
        _, offsets, data = arr.buffers()
        rebased, first, end = _rebased(offsets, off, n, width)
        h.update(rebased)
        if data is not None:
            h.update(memoryview(data)[first:end])
    elif kind == _FIXED_LIST:
        values = arr.values  # ignores the array's own offset
        child, child_width, _ = _kind(values.type)
        if child == _PRIMITIVE and not values.null_count:  # the one-level case, without a slice object
            start = values.offset + off * size
            h.update(b"%d,0;" % (n * size))
            h.update(memoryview(values.buffers()[1])[start * child_width : (start + n * size) * child_width])
        else:
            _update(h, values.slice(off * size, n * size))
    elif kind == _LIST:
        rebased, first, end = _rebased(arr.buffers()[1], off, n, width)
        h.update(rebased)
        _update(h, arr.values.slice(first, end - first))
    else:  # other types: their IPC serialization, which rebases slices the way the file writer does
        h.update(pa.RecordBatch.from_arrays([arr], ["c"]).serialize())


def column_digest(arr: pa.Array) -> str:
    h = xxhash.xxh3_64()
    _update(h, arr)
    return h.hexdigest()


def batch_digests(batch: pa.RecordBatch) -> list[str]:
    return [column_digest(col) for col in batch.columns]


def encode_table(columns: list[str], rows: list[int], digests: list[list[str]]) -> bytes:
    """The checksum table as stored in a shard's schema metadata (canonical JSON: same rows, same bytes)."""
    table = {"algorithm": ALGORITHM, "columns": columns, "rows": rows, "batches": digests}
    return json.dumps(table, sort_keys=True, separators=(",", ":")).encode()


def pin(raw: bytes) -> str:
    """What the manifest records of a checksum table."""
    return hashlib.sha256(raw).hexdigest()


class ChecksumTable:
    """A shard's checksum table, read from its schema metadata and checked against the manifest's pin."""

    def __init__(self, raw: bytes, where: str):
        try:
            table = json.loads(raw)
            self.columns = {c: i for i, c in enumerate(table["columns"])}
            self.rows = [int(r) for r in table["rows"]]
            self.digests = table["batches"]
            algorithm = table["algorithm"]
        except (ValueError, KeyError, TypeError) as e:
            raise IntegrityError(f"{where}: its checksum table cannot be read ({e!r})") from None
        if algorithm != ALGORITHM:
            raise IntegrityError(f"{where}: checksums in {algorithm!r}, this reader knows {ALGORITHM!r}")
        if len(self.digests) != len(self.rows) or any(len(d) != len(self.columns) for d in self.digests):
            raise IntegrityError(f"{where}: its checksum table is malformed (batches and columns do not line up)")
        self.offsets = np.concatenate([[0], np.cumsum(self.rows, dtype=np.int64)])

    @classmethod
    def of(cls, metadata: dict | None, expected_pin: str | None, where: str) -> ChecksumTable | None:
        """The table of a shard whose schema metadata is `metadata`: None when it has none (a shard written
        before checksums); refused when the manifest pins another table or pins one the shard lacks."""
        raw = (metadata or {}).get(METADATA_KEY)
        if raw is None:
            if expected_pin is not None:
                raise IntegrityError(f"{where}: no checksum table, the manifest pins one (changed since the export)")
            return None
        if expected_pin is not None and pin(raw) != expected_pin:
            raise IntegrityError(f"{where}: its checksum table does not match the manifest (changed since the export)")
        return cls(raw, where)

    def describe(self, b: int) -> str:
        return f"record batch {b} (rows {self.offsets[b]}-{self.offsets[b + 1] - 1})"

    def check(self, b: int, batch: pa.RecordBatch, where: str) -> None:
        """Every column of `batch` (record batch b, any subset of the shard's columns) against the table."""
        if b >= len(self.rows) or batch.num_rows != self.rows[b]:
            raise IntegrityError(
                f"{where}: record batch {b} has {batch.num_rows} rows, its checksum table says "
                f"{self.rows[b] if b < len(self.rows) else 'no such batch'}"
            )
        expected = self.digests[b]
        for name, col in zip(batch.schema.names, batch.columns):
            i = self.columns.get(name)
            if i is None:
                raise IntegrityError(f"{where}: column '{name}' has no checksum")
            try:
                ok = column_digest(col) == expected[i]
            except (ValueError, IndexError, pa.ArrowException) as e:  # offsets pointing outside their buffer
                raise IntegrityError(f"{where}: {self.describe(b)}, column '{name}' is corrupt ({e})") from None
            if not ok:
                raise IntegrityError(
                    f"{where}: {self.describe(b)}, column '{name}' does not match its checksum "
                    "(corrupt or changed since the export)"
                )
