"""The TFRecord container, read directly: each record is its length (8 bytes, little-endian), the
length's masked CRC32C (4), the data, and the data's masked CRC32C (4). Both checksums are
verified, as TensorFlow's own reader does.

A broken framing (a length that fails its checksum, a record cut short by the end of the file)
hides everything after it: CorruptRecord. A record whose data fails its checksum while its framing
holds is one lost record (BadChecksum), and the records after it are read as usual. Skipping to a
record checks the same framing, so any slice of a file sees the same damage at the same place.
"""

from __future__ import annotations

from collections.abc import Iterator

from storage import files


class CorruptRecord(Exception):
    """Broken framing: nothing after it can be located. `index` is the first unreadable record."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index


class BadChecksum:
    """Stands for a record whose data fails its checksum."""

    def __init__(self, offset: int):
        self.offset = offset


def _masked_crc(data: bytes) -> int:
    import google_crc32c

    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _frames(f, size: int) -> Iterator[int]:
    """The data length of each record in turn, the framing checked; the caller moves the file past
    the record's data and its checksum (4 bytes) before asking for the next."""
    i = 0
    while True:
        offset = f.tell()
        head = f.read(12)
        if not head:
            return
        if len(head) < 12:
            raise CorruptRecord(i, f"truncated record at byte {offset}")
        length = int.from_bytes(head[:8], "little")
        if _masked_crc(head[:8]) != int.from_bytes(head[8:], "little"):
            raise CorruptRecord(i, f"corrupted record length at byte {offset}")
        if offset + 16 + length > size:
            raise CorruptRecord(i, f"truncated record at byte {offset}")
        yield length
        i += 1


def read_records(path: str, start: int = 0, stop: int | None = None) -> Iterator[bytes | BadChecksum]:
    """Records [start, stop) of a TFRecord file, fewer where the file ends first; records before
    `start` are skipped by their length without reading their data."""
    with files.open_file(path, "rb") as f:
        for i, length in enumerate(_frames(f, files.size(path))):
            if stop is not None and i >= stop:
                return
            if i < start:
                f.seek(length + 4, 1)
                continue
            offset = f.tell() - 12
            data, tail = f.read(length), f.read(4)
            yield data if _masked_crc(data) == int.from_bytes(tail, "little") else BadChecksum(offset)


def count_records(path: str) -> int:
    """How many records the file holds (their framing alone is read)."""
    n = 0
    with files.open_file(path, "rb") as f:
        for length in _frames(f, files.size(path)):
            f.seek(length + 4, 1)
            n += 1
    return n
