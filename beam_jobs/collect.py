"""Bring a pipeline's small results back to the driver: a PCollection of JSON records written as one
JSON-lines file through storage.files (sorted, so the file does not depend on bundling)."""

from __future__ import annotations

import json

import apache_beam as beam

from storage.jsonio import write_jsonl


def _write_sorted(records: list, path: str) -> str:
    write_jsonl(path, sorted(records, key=lambda r: json.dumps(r, sort_keys=True)))
    return path


class CollectToFile(beam.PTransform):
    """PCollection[JSON-able] -> the file `path` (read back with storage.jsonio.read_jsonl)."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def expand(self, pcoll):
        return pcoll | "ToList" >> beam.combiners.ToList() | "Write" >> beam.Map(_write_sorted, self.path)
