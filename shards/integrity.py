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

    def expected(self, b: int, name: str, where: str) -> str:
        i = self.columns.get(name)
        if i is None:
            raise IntegrityError(f"{where}: column '{name}' has no checksum")
        return self.digests[b][i]

    def check(self, b: int, batch: pa.RecordBatch, where: str, skip: tuple = ()) -> None:
        """Every column of `batch` (record batch b, any subset of the shard's columns) against the table,
        but those in `skip` (checked by the caller as it converts them: checked_binary)."""
        if b >= len(self.rows) or batch.num_rows != self.rows[b]:
            raise IntegrityError(
                f"{where}: record batch {b} has {batch.num_rows} rows, its checksum table says "
                f"{self.rows[b] if b < len(self.rows) else 'no such batch'}"
            )
        for name, col in zip(batch.schema.names, batch.columns):
            if name in skip:
                continue
            expected = self.expected(b, name, where)
            try:
                ok = column_digest(col) == expected
            except (ValueError, IndexError, pa.ArrowException) as e:  # offsets pointing outside their buffer
                raise IntegrityError(f"{where}: {self.describe(b)}, column '{name}' is corrupt ({e})") from None
            if not ok:
                self.mismatch(b, name, where)

    def mismatch(self, b: int, name: str, where: str):
        raise IntegrityError(
            f"{where}: {self.describe(b)}, column '{name}' does not match its checksum (corrupt or changed since the export)"
        )


CHUNK_BYTES = 1 << 20  # checked_binary hashes and converts this much at a time, while it is in the CPU's cache


def fusable(arr: pa.Array) -> bool:
    """A column checked_binary can hash as it converts: binary or string, as read back, without nulls."""
    kind, width, _ = _kind(arr.type)
    return kind == _BINARY and not arr.null_count and arr.offset == 0


def checked_binary(arr: pa.Array, expected: str | None) -> list | None:
    """The values of a binary column (fusable) as python objects, hashed as they are converted, chunk by
    chunk: the bytes are read from memory once for both (a record batch of images is tens of MB: hashed
    apart, they would be read twice). None when the digest is not `expected` (no value may be used then).
    The offsets are checked to lie within the values before anything is converted."""
    kind, width, _ = _kind(arr.type)
    n = len(arr)
    _, offsets, data = arr.buffers()
    try:
        o = np.frombuffer(offsets, dtype=np.int32 if width == 4 else np.int64, count=n + 1)
    except ValueError:  # an offsets buffer shorter than its rows
        return None
    size = 0 if data is None else data.size
    if n and (o[0] != 0 or o[-1] > size or (np.diff(o) < 0).any()):
        return None
    h = xxhash.xxh3_64()
    h.update(b"%d,0;" % n)
    h.update(memoryview(offsets)[: (n + 1) * width])
    values: list = []
    step = max(1, int(CHUNK_BYTES * n // max(1, int(o[-1]))) if n else 1)
    view = memoryview(data) if data is not None else b""
    for a in range(0, n, step):
        b = min(n, a + step)
        h.update(view[int(o[a]) : int(o[b])])
        values += arr.slice(a, b - a).to_pylist()
    return values if expected is None or h.hexdigest() == expected else None
