"""The TFRecord container, read directly: each record is its length (8 bytes, little-endian), the
length's masked CRC32C (4), the data, and the data's masked CRC32C (4). Both checksums are
verified, as TensorFlow's own reader does."""

from __future__ import annotations

from collections.abc import Iterator

from storage import files


class CorruptRecord(Exception):
    """A TFRecord whose framing or checksums are wrong."""


def _masked_crc(data: bytes) -> int:
    import google_crc32c

    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_records(path: str, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
    """Records [start, stop) of a TFRecord file; records before `start` are skipped by their
    length without reading their data."""
    with files.open_file(path, "rb") as f:
        i = 0
        while stop is None or i < stop:
            offset = f.tell()
            head = f.read(12)
            if not head:
                return
            if len(head) < 12:
                raise CorruptRecord(f"truncated record at {offset}")
            length = int.from_bytes(head[:8], "little")
            if _masked_crc(head[:8]) != int.from_bytes(head[8:], "little"):
                raise CorruptRecord(f"corrupted record at {offset} (length checksum)")
            if i < start:
                f.seek(length + 4, 1)
                i += 1
                continue
            data, tail = f.read(length), f.read(4)
            if len(data) < length or len(tail) < 4:
                raise CorruptRecord(f"truncated record at {offset}")
            if _masked_crc(data) != int.from_bytes(tail, "little"):
                raise CorruptRecord(f"corrupted record at {offset} (data checksum)")
            i += 1
            yield data
