"""JSON as this project writes it: canonical text (sorted keys, fixed indentation, a newline at
the end), so that the same content is the same bytes, and its sha256 is a content key."""

from __future__ import annotations

import hashlib
import json

from storage import files


def canonical(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def sha256_of(obj) -> str:
    return hashlib.sha256(canonical(obj).encode()).hexdigest()


def write_json(path: str, obj) -> None:
    files.write_bytes(path, canonical(obj).encode())


def read_json(path: str):
    return json.loads(files.read_text(path))


def write_jsonl(path: str, records) -> None:
    files.write_bytes(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode())


def read_jsonl(path: str) -> list:
    if not files.exists(path):
        return []
    return [json.loads(line) for line in files.read_text(path).splitlines() if line.strip()]
