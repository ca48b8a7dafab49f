"""The export job's Beam pieces: encode episodes into rows, spill them into part files,
assemble the final shards from the parts in a fixed episode order.

Parts are an implementation detail of a run (OUT/.work/export/...): bundles decide which
episodes share a part, so parts differ between runs, but final shards are assembled in
(dataset, source file, index) order with fixed batch sizes and are byte-identical.
A part is written under a temporary name and renamed, with an index of its episodes, so a
killed run's finished parts are reused by the next.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
import pyarrow as pa

from beam_jobs.progress import Progress
from grids.grid import ActionGrid
from grids.tokenizer import ActionTokenizer
from shards.schema import shard_rows, write_table
from storage import files
from storage.jsonio import read_json
from transforms.episode import StandardEpisode
from transforms.frames import prepare_frames
from transforms.normalize import normalize

PART_TARGET_BYTES = int(os.environ.get("SPATIAL_PIPELINE_PART_BYTES", 16 << 20))  # finished parts survive a crash
ROWS_PER_BATCH = 1024


@dataclass
class EncodedEpisode:
    dataset: str
    episode_id: str
    columns: dict  # column name -> list/array with one entry per step
    pixels: np.ndarray | None = None  # uint8 [T, S, S, 3] of the primary camera, when depth runs

    @property
    def num_steps(self) -> int:
        return len(self.columns["step"])


def episode_order(dataset: str, episode_id: str) -> tuple:
    """The fixed order of episodes in the final shards: source file, then index within it."""
    file, _, index = episode_id.rpartition("#")
    return dataset, file, int(index) if index.isdigit() else index


class EncodeEpisodeFn(beam.DoFn):
    """StandardEpisode -> EncodedEpisode: normalized action, tokens, images at the export size."""

    def __init__(
        self,
        stats: dict,
        grid_json: dict,
        image_size: int,
        normalization: str,
        keep_pixels: bool,
        total_episodes: int = 0,
        text_tokenizer=None,
        action_token_base: int = 0,
    ):
        self.text_tokenizer = text_tokenizer  # a Hugging Face tokenizer (pickled with the DoFn), or None
        self.action_token_base = action_token_base
        self.stats = stats
        self.grid_json = grid_json
        self.image_size = image_size
        self.normalization = normalization
        self.keep_pixels = keep_pixels
        self.total = total_episodes
        self.steps = beam.metrics.Metrics.counter("export", "steps")

    def setup(self):
        self.tokenizer = ActionTokenizer(ActionGrid.from_json(self.grid_json))
        self.progress = Progress("export", self.total)

    def process(self, ep: StandardEpisode):
        t = ep.num_steps
        action = normalize(ep.action, self.stats[ep.dataset]["action"], self.normalization).astype(np.float32)
        tokens = self.tokenizer.encode(action).astype(np.int32)
        jpegs, pixels = prepare_frames(ep.image, self.image_size, keep_pixels=self.keep_pixels)
        columns = {
            "dataset": [ep.dataset] * t,
            "episode_id": [ep.episode_id] * t,
            "step": np.arange(t, dtype=np.int32),
            "is_first": np.arange(t) == 0,
            "is_last": np.arange(t) == t - 1,
            "language_instruction": [ep.instruction] * t,
            "image": jpegs,
            "action": action,
            "raw_action": ep.action.astype(np.float32),
            "action_tokens": tokens,
        }
        if ep.wrist_image is not None:
            columns["wrist_image"] = prepare_frames(ep.wrist_image, self.image_size)[0]
        if self.text_tokenizer is not None:
            ids = self.text_tokenizer(ep.instruction, add_special_tokens=False)["input_ids"]
            columns["input_ids"] = [ids] * t
            columns["action_input_ids"] = tokens + self.action_token_base
        self.steps.inc(t)
        self.progress.update(1, t)
        yield EncodedEpisode(ep.dataset, ep.episode_id, columns, pixels)


def episode_table(e: EncodedEpisode, schema: pa.Schema) -> pa.Table:
    arrays = []
    for f in schema:
        value = e.columns[f.name]
        if pa.types.is_fixed_size_list(f.type):
            dtype = np.float32 if pa.types.is_floating(f.type.value_type) else np.int32
            flat = np.ascontiguousarray(value, dtype=dtype).reshape(-1)
            arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(flat, f.type.value_type), f.type.list_size))
        else:
            arrays.append(pa.array(value, f.type))  # input_ids: a list of ids per step
    return pa.Table.from_arrays(arrays, schema=schema)


class WritePartsFn(beam.DoFn):
    """Buffers encoded episodes per dataset and spills them into part files of ~PART_TARGET_BYTES."""

    def __init__(self, work_dir: str, schemas: dict, target_bytes: int = PART_TARGET_BYTES):
        self.work_dir = work_dir
        self.schemas = schemas  # dataset -> pa.Schema (serialized for pickling)
        self.target = target_bytes

    def start_bundle(self):
        self.buffers: dict[str, list[pa.Table]] = {}
        self.sizes: dict[str, int] = {}

    def process(self, e: EncodedEpisode):
        schema = pa.ipc.read_schema(pa.py_buffer(self.schemas[e.dataset]))
        table = episode_table(e, schema)
        self.buffers.setdefault(e.dataset, []).append(table)
        self.sizes[e.dataset] = self.sizes.get(e.dataset, 0) + table.nbytes
        if self.sizes[e.dataset] >= self.target:
            yield self._flush(e.dataset)

    def finish_bundle(self):
        from apache_beam.transforms.window import GlobalWindow
        from apache_beam.utils.windowed_value import WindowedValue

        for dataset in list(self.buffers):
            if self.buffers[dataset]:
                yield WindowedValue(self._flush(dataset), 0, [GlobalWindow()])

    def _flush(self, dataset: str) -> dict:
        tables = self.buffers.pop(dataset)
        self.sizes.pop(dataset, None)
        name = f"{dataset}-{uuid.uuid4().hex}"
        path = files.join(self.work_dir, f"{name}.arrow")
        tmp = files.join(self.work_dir, f".{name}.tmp")
        with files.open_file(tmp, "wb") as f:
            with pa.ipc.new_file(f, tables[0].schema) as w:
                for t in tables:
                    w.write_table(t)
        files.rename(tmp, path)
        index = {
            "dataset": dataset,
            "path": path,
            "episodes": [
                {"episode_id": t.column("episode_id")[0].as_py(), "rows": t.num_rows, "bytes": t.nbytes} for t in tables
            ],
        }
        with files.open_file(files.join(self.work_dir, f"{name}.json"), "wb") as f:
            f.write(json.dumps(index, sort_keys=True).encode())
        return index


def read_part_indexes(work_dir: str) -> list[dict]:
    """Indexes of the finished parts (a part counts once its index is written)."""
    out = []
    for meta in files.glob(files.join(work_dir, "*.json")):
        index = read_json(meta)
        if files.exists(index["path"]):
            out.append(index)
    return sorted(out, key=lambda i: i["path"])


def read_table(path: str) -> pa.Table:
    with files.open_file(path, "rb") as f:
        return pa.ipc.open_file(pa.py_buffer(f.read())).read_all()


@dataclass(frozen=True)
class ShardJob:
    dataset: str
    path: str  # final path
    episodes: tuple  # ((episode_id, part path, row offset in part, rows), ...) in final order


def _finished_rows(path: str) -> int | None:
    if not files.exists(path):
        return None
    with files.open_file(path, "rb") as f:
        return shard_rows(f)


def assemble_shard(job: ShardJob) -> dict:
    rows = sum(e[3] for e in job.episodes)
    if _finished_rows(job.path) == rows:
        pass  # finished by an interrupted run: the same episodes in the same order, so the same bytes
    else:
        parts, tables = {}, []
        for _, part, offset, n in job.episodes:
            if part not in parts:
                parts = {part: read_table(part)}  # episodes of a shard come in runs from few parts
            tables.append(parts[part].slice(offset, n))
        table = pa.concat_tables(tables)
        tmp = files.temporary_name(job.path)
        with files.open_file(tmp, "wb") as f:
            write_table(f, table)
        files.rename(tmp, job.path)
    return {
        "dataset": job.dataset,
        "path": job.path,
        "num_rows": rows,
        "num_episodes": len(job.episodes),
        "sha256": files.sha256_file(job.path),
        "bytes": files.size(job.path),
    }


class AssembleShardFn(beam.DoFn):
    def process(self, job: ShardJob):
        yield assemble_shard(job)
