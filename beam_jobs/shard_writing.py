"""The export job's Beam pieces: read and encode a task's episodes, write them as one part file,
assemble the final shards from the parts in a fixed episode order.

Frames (the images at the export size, the wrist images, depth) are the expensive part and
depend on far fewer settings than the rest of a row, so each task's frames are kept in a frame
cache entry (one Arrow file per read task, its index in the schema metadata) under a key of
everything that decides them (beam_jobs.frame_cache). A task whose entry exists reads only the
actions of its episodes and takes their frames from the entry: no image is decoded.

Parts are an implementation detail of a run (OUT/.work/export/<run key>/): one per read task,
written under a temporary name and renamed, then its index (atomic too), so a killed run's
finished tasks are reused by the next. Which worker wrote which part differs between runs; the
final shards are assembled in (dataset, source file, index) order with fixed batch sizes and
are byte-identical.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
import pyarrow as pa

from beam_jobs.frame_cache import FRAME_COLUMNS, first_frame_size, read_frames, write_frames
from beam_jobs.progress import Ticker
from beam_jobs.reading import TaskReaderFn, task_name, worker_id
from grids.grid import ActionGrid
from grids.tokenizer import ActionTokenizer
from manifests.registry import DatasetConfig
from shards.schema import write_table
from sources.episodes import ReadTask, problem
from storage import files
from storage.jsonio import read_json, write_json
from transforms.episode import StandardEpisode
from transforms.frames import FrameError, prepare_frames
from transforms.normalize import normalize
from transforms.sampling import sampled

# Episodes per export task: a task is encoded and written as one part (memory: one task's frames).
EPISODES_PER_TASK = int(os.environ.get("SPATIAL_PIPELINE_TASK_EPISODES", 8))


@dataclass
class EncodedEpisode:
    dataset: str
    episode_id: str
    columns: dict  # column name -> list/array with one entry per step
    pixels: np.ndarray | None = None  # uint8 [T, S, S, 3] of the primary camera, when depth runs

    @property
    def num_steps(self) -> int:
        return len(self.columns["step"])


@dataclass
class EncodedTask:
    """One task's encoded episodes and the problems met reading them: one element of the job."""

    dataset: str
    task: str
    episodes: list[EncodedEpisode]
    problems: list[dict]
    frames: str | None = None  # the task's frame cache entry (None: no cache)
    from_cache: bool = False  # frames (and depth) were read from it, not encoded
    frame_sizes: dict | None = None  # "HxW" of the source frames -> episodes (the primary camera)


@dataclass(frozen=True)
class ExportTask:
    """A read task of the export, and its frame cache entry (None: no cache) if one exists."""

    read: ReadTask
    frames: str | None = None
    cached: bool = False


def episode_order(dataset: str, episode_id: str) -> tuple:
    """The fixed order of episodes in the final shards: source file, then index within it."""
    file, _, index = episode_id.rpartition("#")
    return dataset, file, int(index) if index.isdigit() else index


@dataclass
class Encoding:
    """How an episode becomes rows: the statistics, grid, image size and text tokens of the export."""

    stats: dict
    grid_json: dict
    image_size: int
    normalization: str
    keep_pixels: bool
    text_tokenizer: object = None  # a Hugging Face tokenizer (pickled with the DoFn), or None
    action_token_base: int = 0

    def encode(
        self, tokenizer: ActionTokenizer, ep: StandardEpisode, cfg: DatasetConfig, frames: dict | None = None
    ) -> EncodedEpisode:
        """`frames`: the episode's frame columns from the frame cache (image, wrist_image, depth):
        no image is decoded."""
        t = ep.num_steps
        stats = self.stats[ep.dataset]["action"]
        action = normalize(ep.action, stats, self.normalization).astype(np.float32)
        tokens = tokenizer.encode(action).astype(np.int32)
        if frames is not None:
            jpegs, pixels = frames["image"], None
        else:
            jpegs, pixels = prepare_frames(ep.image, self.image_size, keep_pixels=self.keep_pixels)  # FrameError
        columns = {
            "dataset": [ep.dataset] * t,
            "episode_id": [ep.episode_id] * t,
            "step": np.arange(t, dtype=np.int32),
            "is_first": np.arange(t) == 0,
            "is_last": np.arange(t) == t - 1,
            "language_instruction": ep.step_instructions(),  # per step: an instruction may change mid-episode
            "image": jpegs,
            "action": action,
            "raw_action": ep.action.astype(np.float32),
            "action_tokens": tokens,
        }
        if cfg.primary_choices:  # which camera this episode's `image` is
            columns["camera"] = [ep.camera] * t
        if cfg.sample_filter:
            columns["sampled"] = sampled(action, stats, self.normalization, cfg.sample_filter)
        if frames is not None:
            columns.update({k: v for k, v in frames.items() if k != "image"})
        elif ep.wrist_image is not None:
            try:
                columns["wrist_image"] = prepare_frames(ep.wrist_image, self.image_size)[0]
            except FrameError as e:
                raise FrameError(f"wrist camera {e}") from None
        if "proprio" in self.stats[ep.dataset]:  # the dataset's shards carry a proprio column (shard_schema)
            columns["proprio"] = proprio_column(ep, len(self.stats[ep.dataset]["proprio"]["mean"]))
        if self.text_tokenizer is not None:
            texts = columns["language_instruction"]
            ids = {x: self.text_tokenizer(x, add_special_tokens=False)["input_ids"] for x in dict.fromkeys(texts)}
            columns["input_ids"] = [ids[x] for x in texts]
            columns["action_input_ids"] = tokens + self.action_token_base
        return EncodedEpisode(ep.dataset, ep.episode_id, columns, pixels)


def proprio_column(ep: StandardEpisode, dim: int) -> np.ndarray:
    """The episode's standardized proprio [T, dim] float32, as the statistics stage saw it."""
    if ep.proprio is None or ep.proprio.shape != (ep.num_steps, dim):
        shape = None if ep.proprio is None else ep.proprio.shape
        raise ValueError(
            f"dataset '{ep.dataset}' episode {ep.episode_id}: proprio of shape {shape}, its statistics have "
            f"{dim} dims over {ep.num_steps} steps"
        )
    return ep.proprio.astype(np.float32)


class ReadEncodeFn(TaskReaderFn):
    """ExportTask -> EncodedTask: normalized actions, tokens, images at the export size (from the
    frame cache when the task has an entry there)."""

    def __init__(self, configs: dict, encoding: Encoding, seed: int = 0):
        super().__init__(configs, images=True, proprio=True, seed=seed)
        self.encoding = encoding
        self.ticker = Ticker("export")

    def setup(self):
        super().setup()
        self.tokenizer = ActionTokenizer(ActionGrid.from_json(self.encoding.grid_json))

    def process(self, task: ExportTask):
        encoded = self.from_cache(task) if task.cached else None
        if encoded is None:
            encoded = self.encode_task(task)
        self.ticker(len(encoded.episodes), sum(e.num_steps for e in encoded.episodes))
        yield encoded

    def encode_task(self, task: ExportTask) -> EncodedTask:
        read = task.read
        episodes, problems = self.read(read)
        encoded, sizes = [], {}
        for ep in episodes:
            try:
                encoded.append(self.encoding.encode(self.tokenizer, ep, self.configs[ep.dataset]))
            except FrameError as e:  # the episode is skipped and counted, the rest of the task goes on
                problems.append(problem(read.dataset, read.shard.path, f"bad image: {e}", ep.episode_id))
                continue
            size = first_frame_size(ep.image)
            if size:
                sizes[size] = sizes.get(size, 0) + 1
        return EncodedTask(read.dataset, task_name(read), encoded, problems, task.frames, False, sizes)

    def from_cache(self, task: ExportTask) -> EncodedTask | None:
        """The task's episodes with their frames from its cache entry; None when the entry cannot be
        used (unreadable, or episodes that this read does not give: then the task is encoded)."""
        read = task.read
        try:
            table, index = read_frames(task.frames)
        except (OSError, ValueError, KeyError, pa.ArrowException):
            return None
        episodes, _ = self.read(read, images=False)  # the entry holds the problems of the full read
        by_id = {e.episode_id: e for e in episodes}
        encoded, offset = [], 0
        for entry in index["episodes"]:
            ep = by_id.get(entry["episode_id"])
            rows = entry["rows"]
            if ep is None or ep.num_steps != rows:
                return None
            frames = {c: table.column(c).slice(offset, rows).to_pylist() for c in table.column_names}
            encoded.append(self.encoding.encode(self.tokenizer, ep, self.configs[ep.dataset], frames))
            offset += rows
        return EncodedTask(read.dataset, task_name(read), encoded, index["problems"], task.frames, True,
                           index["frame_sizes"])  # fmt: skip


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


class WritePartFn(beam.DoFn):
    """EncodedTask -> its part file and the part's index (what the driver reads back)."""

    def __init__(self, work_dir: str, schemas: dict):
        self.work_dir = work_dir
        self.schemas = schemas  # dataset -> pa.Schema (serialized for pickling)

    def process(self, encoded: EncodedTask):
        name = f"{encoded.dataset}-{uuid.uuid4().hex}"
        schema = pa.ipc.read_schema(pa.py_buffer(self.schemas[encoded.dataset]))
        tables = [episode_table(e, schema) for e in encoded.episodes]
        if encoded.frames and not encoded.from_cache:  # kept for the next run that needs these frames
            columns = [c for c in FRAME_COLUMNS if c in schema.names]
            index = {
                "task": encoded.task,
                "episodes": [{"episode_id": e.episode_id, "rows": e.num_steps} for e in encoded.episodes],
                "problems": encoded.problems,
                "frame_sizes": encoded.frame_sizes or {},
            }
            write_frames(encoded.frames, pa.schema([schema.field(c) for c in columns]),
                         [t.select(columns) for t in tables], index)  # fmt: skip
        path = None
        if tables:
            path = files.join(self.work_dir, f"{name}.arrow")
            tmp = files.temporary_name(path)
            with files.open_file(tmp, "wb") as f, pa.ipc.new_file(f, schema) as w:
                for t in tables:
                    w.write_table(t)
            files.rename(tmp, path)
        index = {
            "dataset": encoded.dataset,
            "task": encoded.task,
            "path": path,
            "worker": worker_id(),
            "from_cache": encoded.from_cache,
            "frame_sizes": encoded.frame_sizes or {},
            "problems": encoded.problems,
            "steps_not_sampled": sum(
                int((~np.asarray(e.columns["sampled"])).sum()) for e in encoded.episodes if "sampled" in e.columns
            ),
            "episodes": [
                {"episode_id": e.episode_id, "rows": t.num_rows, "bytes": t.nbytes}
                for e, t in zip(encoded.episodes, tables)
            ],
        }
        write_json(files.join(self.work_dir, f"{name}.json"), index)  # the part counts once this exists
        yield index


def read_part_indexes(work_dir: str) -> list[dict]:
    """Indexes of the finished tasks (a task counts once its index is written), one per task: a task
    that ran twice (a retried bundle, a lost worker's task given to another) counts by its first part
    (by path), so its episodes, counts and notes are taken once. An index that cannot be read (a disk
    that filled up under an older version) just means its task is redone."""
    out = []
    for meta in files.glob_in(work_dir, "*.json"):
        try:
            index = read_json(meta)
            if index["path"] is None or files.exists(index["path"]):
                out.append(index)
        except (OSError, ValueError, KeyError, TypeError):
            continue
    first: dict[str, dict] = {}
    for index in sorted(out, key=lambda i: (i["task"], i["path"] or "")):
        first.setdefault(index["task"], index)
    return list(first.values())


def read_table(path: str) -> pa.Table:
    with files.open_file(path, "rb") as f:
        return pa.ipc.open_file(pa.py_buffer(f.read())).read_all()


@dataclass(frozen=True)
class ShardJob:
    dataset: str
    path: str  # final path
    episodes: tuple  # ((episode_id, part path, row offset in part, rows), ...) in final order


def assemble_shard(job: ShardJob) -> dict:
    parts, tables = {}, []
    for _, part, offset, n in job.episodes:
        if part not in parts:
            parts = {part: read_table(part)}  # episodes of a shard come in runs from few parts
        tables.append(parts[part].slice(offset, n))
    table = pa.concat_tables(tables)
    tmp = files.temporary_name(job.path)
    with files.open_file(tmp, "wb") as f:
        pins = write_table(f, table)  # the checksum table's pin, for the manifest
    files.rename(tmp, job.path)
    return {
        "dataset": job.dataset,
        "path": job.path,
        "num_rows": table.num_rows,
        "num_episodes": len(job.episodes),
        "sha256": files.sha256_file(job.path),
        "bytes": files.size(job.path),
        **pins,
    }


class AssembleShardFn(beam.DoFn):
    def process(self, job: ShardJob):
        yield assemble_shard(job)
