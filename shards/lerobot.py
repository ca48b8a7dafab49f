"""An export as LeRobot datasets (format v3.0, lerobot 0.4.x), one per dataset, written from the export alone.

    python -m shards.lerobot OUT DEST [--datasets a,b] [--codec h264|av1] [--crf N] [--overwrite] [--no-verify]

    from lerobot.datasets.lerobot_dataset import LeRobotDataset     # in a LeRobot environment
    ds = LeRobotDataset("bridge_orig", root="DEST/bridge_orig")

DEST/<dataset> holds what LeRobot's own writer (lerobot.datasets.lerobot_dataset) writes:

    meta/info.json                    codebase_version v3.0, fps, features, totals, paths, file size limits
    meta/stats.json                   per feature: min, max, mean, std, count, q01, q10, q50, q90, q99
    meta/tasks.parquet                the instructions, indexed by the task string, with task_index
    meta/episodes/chunk-000/file-000.parquet   per episode: tasks, length, dataset_from/to_index, data and
                                      video chunk/file indices, per video from/to timestamps, stats/*
    data/chunk-000/file-000.parquet   per frame: action, observation.state, timestamp, frame_index,
                                      episode_index, index, task_index (one row group per episode)
    videos/observation.images.<camera>/chunk-000/file-000.mp4

Facts from LeRobot's source (0.4.4): episodes share data and video files, up to 100 MB of parquet and
200 MB of video per file and 1000 files per chunk directory; an episode's frames are found in its video
file at `from_timestamp + timestamp`, where timestamp = frame_index / fps, and the decoder (torchcodec)
takes frame `round(t * fps)` of the file, so every video is constant-rate at fps = the dataset's
control rate and episodes follow each other without gaps. Feature names have no "/", cameras are
`observation.images.<camera>` (our `image` and `wrist_image`) of shape (H, W, 3) with names ending in
"channels", and image statistics are per channel, shaped (3, 1, 1), in [0, 1].

What goes in:
- `action` is the export's `raw_action`: the standardized action before our normalization (LeRobot's
  policies normalize with stats.json themselves, e.g. pi0.5 with q01/q99: our normalized action would be
  normalized twice). Its statistics are the export's own (dataset_statistics.json: mean, std, min, max,
  q01, q99, count = its transitions); q10, q50, q90 are computed here from the raw_action column with the
  same log-linear histogram the statistics stage uses (transforms.statistics: within 2.4e-4 of each
  value's magnitude).
- `observation.state` is the export's `proprio` column (the standardized proprio, where the registry
  names proprio keys), statistics likewise from dataset_statistics.json's `proprio` entry.
- images: each frame is our JPEG decoded and encoded once into the video (default H.264 at crf 23,
  keyframe every 2 frames, no B-frames: >= 37 dB PSNR against our frames on the real Bridge slice,
  where LeRobot's own default, AV1 at crf 30, gives 35.7 dB; `--codec av1` for AV1 at crf 25). Their
  statistics are exact over every frame (256-bin histograms per channel), where LeRobot samples frames.
- per-episode statistics are exact (numpy quantiles over the episode's rows).
Not exported: the normalized action and its tokens, depth, the DROID `camera` and `sampled` columns.

Memory: the export is streamed episode by episode (one episode's encoded frames and one decoded frame
at a time); each dataset is written under a temporary name and renamed when complete. The same export
and options give the same bytes (single-threaded encoders).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from shards.manifest import ManifestError, export_dir, read_statistics, shard_path, verify_manifest
from shards.schema import open_ipc
from storage import files
from transforms.frames import FrameError, decode
from transforms.statistics import Accumulator

CODEBASE_VERSION = "v3.0"  # lerobot.datasets.lerobot_dataset.CODEBASE_VERSION of lerobot 0.4.x
CHUNKS_SIZE = 1000  # files per chunk directory (their DEFAULT_CHUNK_SIZE)
DATA_FILE_MB = 100  # their DEFAULT_DATA_FILE_SIZE_IN_MB
VIDEO_FILE_MB = 200  # their DEFAULT_VIDEO_FILE_SIZE_IN_MB
CHUNK_FILE = "chunk-{chunk_index:03d}/file-{file_index:03d}"
DATA_PATH = "data/" + CHUNK_FILE + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE + ".mp4"
EPISODES_PATH = "meta/episodes/" + CHUNK_FILE + ".parquet"
CAMERAS = ("image", "wrist_image")  # shard columns -> observation.images.<column>
ACTION_NAMES = ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]
QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}  # their DEFAULT_QUANTILES
INDEX_FEATURES = ("timestamp", "frame_index", "episode_index", "index", "task_index")  # their DEFAULT_FEATURES
# codec -> (FFmpeg encoder, default crf, options). One thread: the same bytes on every machine. No B-frames:
# episodes are encoded one by one and joined packet by packet, each starting with a keyframe.
CODECS = {
    "h264": ("libx264", 23, {"g": "2", "bf": "0", "threads": "1"}),
    "av1": ("libsvtav1", 25, {"g": "2", "preset": "8", "svtav1-params": "lp=1"}),
}


class LeRobotExportError(ValueError):
    """An export or a destination this converter cannot use; the message names it and why."""


def fps_of(control_hz) -> int | float:
    """info.json's fps: the control rate, an int where it is whole (LeRobot writes ints)."""
    hz = float(control_hz)
    return int(hz) if hz.is_integer() else hz


# ---------------------------------------------------------------- statistics


def vector_stats(x: np.ndarray) -> dict:
    """Exact statistics of rows [T, D] in LeRobot's layout (arrays of shape (D,), count (1,))."""
    x = np.asarray(x, np.float64)
    out = {
        "min": x.min(0),
        "max": x.max(0),
        "mean": x.mean(0),
        "std": x.std(0),
        "count": np.array([len(x)]),
    }
    for key, q in QUANTILES.items():
        out[key] = np.quantile(x, q, axis=0)
    return out


def histogram_quantile(counts: np.ndarray, q: float) -> float:
    """np.quantile's default ('linear') of the values 0..255 counted in `counts`, exactly."""
    n = int(counts.sum())
    h = (n - 1) * q
    lo, hi = int(np.floor(h)), int(np.ceil(h))
    cum = np.cumsum(counts)
    a, b = int(np.searchsorted(cum, lo, side="right")), int(np.searchsorted(cum, hi, side="right"))
    return a + (h - lo) * (b - a)


def image_stats(hist: np.ndarray, frames: int) -> dict:
    """Per-channel statistics from per-channel pixel histograms [3, 256], scaled to [0, 1] and shaped
    (3, 1, 1) as LeRobot's compute_episode_stats writes them; count = frames."""
    values = np.arange(256, dtype=np.float64)
    n = hist.sum(1).astype(np.float64)
    mean = (hist * values).sum(1) / n
    var = (hist * (values - mean[:, None]) ** 2).sum(1) / n
    present = hist > 0
    out = {
        "min": np.array([values[p].min() for p in present]),
        "max": np.array([values[p].max() for p in present]),
        "mean": mean,
        "std": np.sqrt(var),
    }
    out.update({key: np.array([histogram_quantile(c, q) for c in hist]) for key, q in QUANTILES.items()})
    out = {k: (v / 255.0).reshape(3, 1, 1) for k, v in out.items()}
    out["count"] = np.array([frames])
    return out


def accumulated_stats(acc: Accumulator, base: dict | None = None, count: int | None = None) -> dict:
    """Statistics of an accumulator (exact moments and extremes, histogram quantiles); `base` (the
    export's statistics) takes precedence where it has a value."""
    out = {k: np.asarray(v) for k, v in acc.extract().items()}
    for key, q in QUANTILES.items():
        out[key] = acc.quantile(q)
    for key in ("min", "max", "mean", "std", "q01", "q99"):
        if base and key in base:
            out[key] = np.asarray(base[key], np.float64)
    out["count"] = np.array([acc.n if count is None else count])
    return {k: out[k] for k in ("min", "max", "mean", "std", "count", *QUANTILES)}


def jsonable(stats: dict) -> dict:
    return {feature: {k: np.asarray(v).tolist() for k, v in s.items()} for feature, s in stats.items()}


# ---------------------------------------------------------------- files


def next_file(chunk: int, file: int) -> tuple[int, int]:
    """Their update_chunk_file_indices: the next file, in a new chunk directory after CHUNKS_SIZE files."""
    return (chunk + 1, 0) if file == CHUNKS_SIZE - 1 else (chunk, file + 1)


class ParquetFiles:
    """Tables appended to chunk-XXX/file-YYY.parquet files, a new file when the next table would take the
    current one past `limit_mb` (their rule for data files: the file's size plus the table's rows at the
    file's bytes per row so far). One row group per table."""

    def __init__(self, root: Path, pattern: str, schema: pa.Schema, limit_mb: float):
        self.root, self.pattern, self.schema, self.limit = root, pattern, schema, limit_mb * 1024**2
        self.chunk, self.file, self.rows = 0, 0, 0
        self.sink = self.writer = None

    def target(self, rows: int) -> tuple[int, int]:
        """(chunk, file) that `rows` more rows go to: the current file, or the next one when they would
        take it past the limit."""
        if self.writer is not None and self.rows:
            size = self.sink.tell()
            if size + size / self.rows * rows >= self.limit:
                self.close()
                self.chunk, self.file = next_file(self.chunk, self.file)
        return self.chunk, self.file

    def append(self, table: pa.Table) -> tuple[int, int]:
        where = self.target(table.num_rows)
        if self.writer is None:
            path = self.root / self.pattern.format(chunk_index=self.chunk, file_index=self.file)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.sink = pa.OSFile(str(path), "wb")
            self.writer = pq.ParquetWriter(self.sink, self.schema, compression="snappy", use_dictionary=True)
            self.rows = 0
        self.writer.write_table(table.cast(self.schema), row_group_size=max(table.num_rows, 1))
        self.rows += table.num_rows
        return where

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.sink.close()
            self.writer = self.sink = None


class VideoFiles:
    """One camera's episodes joined into constant-rate mp4 files, a new file when the next episode would
    take the current one to `limit_mb` (their rule: file bytes + episode bytes >= the limit). Episodes
    are encoded one by one (each starts with a keyframe) and their packets appended with shifted
    timestamps, as their concatenate_video_files does by remuxing."""

    def __init__(self, root: Path, key: str, limit_mb: float):
        self.root, self.key, self.limit = root, key, limit_mb * 1024**2
        self.chunk, self.file = 0, 0
        self.container = self.stream = self.extradata = None
        self.bytes = 0
        self.ticks = 0  # the file's duration so far, in its time base

    def append(self, episode_mp4: bytes, frames: int, fps: Fraction) -> dict:
        import av

        if self.container is not None and self.bytes and self.bytes + len(episode_mp4) >= self.limit:
            self.close()
            self.chunk, self.file = next_file(self.chunk, self.file)
        with av.open(io.BytesIO(episode_mp4)) as source:
            src = source.streams.video[0]
            if self.container is None:
                path = self.root / VIDEO_PATH.format(video_key=self.key, chunk_index=self.chunk, file_index=self.file)
                path.parent.mkdir(parents=True, exist_ok=True)
                self.container = av.open(str(path), "w", format="mp4", options={"movflags": "faststart"})
                self.stream = self.container.add_stream_from_template(src, opaque=True)
                self.stream.time_base = src.time_base
                self.extradata, self.bytes, self.ticks = src.codec_context.extradata, 0, 0
            elif src.codec_context.extradata != self.extradata:  # same settings give the same headers
                raise LeRobotExportError(f"{self.key}: an episode's codec headers differ from its file's")
            start, ticks, count = self.ticks, 0, 0
            for packet in source.demux(src):
                if packet.dts is None:  # the demuxer's flush packet
                    continue
                ticks += packet.duration
                count += 1
                packet.pts += start
                packet.dts += start
                packet.stream = self.stream
                self.container.mux(packet)
            tb = src.time_base
        if count != frames or Fraction(ticks) * tb != frames / fps:
            raise LeRobotExportError(
                f"{self.key}: the encoder gave {count} frame(s) over {float(ticks * tb):.6f} s for {frames} "
                f"frame(s) at {float(fps)} fps"
            )
        self.ticks += ticks
        self.bytes += len(episode_mp4)
        return {
            f"videos/{self.key}/chunk_index": self.chunk,
            f"videos/{self.key}/file_index": self.file,
            f"videos/{self.key}/from_timestamp": float(start * tb),
            f"videos/{self.key}/to_timestamp": float(self.ticks * tb),
        }

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
            self.container = self.stream = None


def encode_episode(jpegs: list, fps: Fraction, codec: str, crf: int, where: str) -> tuple[bytes, np.ndarray, tuple]:
    """An episode's JPEG frames -> (an mp4 of them at fps, per-channel pixel histograms [3, 256], (H, W)).
    Frames are decoded one at a time."""
    import av

    encoder, _, options = CODECS[codec]
    buf = io.BytesIO()
    hist = np.zeros((3, 256), np.int64)
    shape = None
    with av.open(buf, "w", format="mp4") as out:
        stream = None
        for i, data in enumerate(jpegs):
            try:
                pixels = decode(data)
            except FrameError as e:
                raise LeRobotExportError(f"{where} frame {i}: {e}") from None
            if stream is None:
                shape = pixels.shape[:2]
                if shape[0] % 2 or shape[1] % 2:
                    raise LeRobotExportError(
                        f"{where}: frames of {shape[1]}x{shape[0]} pixels; yuv420p video needs an even width and "
                        "height (re-export with an even --image-size)"
                    )
                stream = out.add_stream(encoder, rate=fps, options={**options, "crf": str(crf)})
                stream.width, stream.height, stream.pix_fmt = shape[1], shape[0], "yuv420p"
                stream.time_base = 1 / fps
            elif pixels.shape[:2] != shape:
                raise LeRobotExportError(f"{where} frame {i}: {pixels.shape[:2]} pixels, the first frame {shape}")
            for c in range(3):
                hist[c] += np.bincount(pixels[..., c].ravel(), minlength=256)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = i, 1 / fps
            for packet in stream.encode(frame):
                out.mux(packet)
        if stream is None:
            raise LeRobotExportError(f"{where}: no frames")
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue(), hist, shape


# ---------------------------------------------------------------- reading the export


def episodes_of(paths: list[str], columns: list[str], dataset: str):
    """The export's episodes of one dataset, in order, as pyarrow tables (one episode at a time)."""
    for path in paths:
        reader = open_ipc(path, columns)
        pending: list[pa.RecordBatch] = []
        for b in range(reader.num_record_batches):
            batch = reader.get_batch(b)
            start = 0
            for end in (np.flatnonzero(batch.column("is_last").to_numpy(zero_copy_only=False)) + 1).tolist():
                pending.append(batch.slice(start, end - start))
                yield checked_episode(pa.Table.from_batches(pending), path, dataset)
                pending, start = [], end
            if start < batch.num_rows:
                pending.append(batch.slice(start))
        if pending:
            raise LeRobotExportError(f"{path}: its last rows do not end an episode (no is_last)")


def checked_episode(table: pa.Table, path: str, dataset: str) -> pa.Table:
    ids = table.column("episode_id").unique().to_pylist()
    steps = table.column("step").to_numpy()
    names = table.column("dataset").unique().to_pylist()
    if len(ids) != 1 or not np.array_equal(steps, np.arange(len(steps))) or names != [dataset]:
        raise LeRobotExportError(
            f"{path}: rows of episode(s) {ids[:3]} (dataset(s) {names}) are not one episode of '{dataset}' with "
            "steps 0..T-1"
        )
    return table


# ---------------------------------------------------------------- one dataset


def info_features(action_dim: int, state_dim: int, cameras: dict, fps, codec: str) -> dict:
    features = {"action": {"dtype": "float32", "shape": [action_dim], "names": ACTION_NAMES[:action_dim]}}
    if state_dim:
        names = [f"proprio_{i}" for i in range(state_dim)]
        features["observation.state"] = {"dtype": "float32", "shape": [state_dim], "names": names}
    for key, (h, w) in cameras.items():
        features[key] = {
            "dtype": "video",
            "shape": [h, w, 3],
            "names": ["height", "width", "channels"],
            "info": {
                "video.height": h,
                "video.width": w,
                "video.codec": codec,  # the codec's canonical name, as their get_video_info
                "video.pix_fmt": "yuv420p",
                "video.is_depth_map": False,
                "video.fps": fps,
                "video.channels": 3,
                "has_audio": False,
            },
        }
    features["timestamp"] = {"dtype": "float32", "shape": [1], "names": None}
    for key in INDEX_FEATURES[1:]:
        features[key] = {"dtype": "int64", "shape": [1], "names": None}
    return features


def data_schema(state_dim: int) -> pa.Schema:
    """The data files' schema, with the `datasets` features LeRobot's writer stores in it."""
    fields = [pa.field("action", pa.list_(pa.float32(), len(ACTION_NAMES)))]
    hf = {"action": _hf_sequence(len(ACTION_NAMES))}
    if state_dim:
        fields.append(pa.field("observation.state", pa.list_(pa.float32(), state_dim)))
        hf["observation.state"] = _hf_sequence(state_dim)
    fields.append(pa.field("timestamp", pa.float32()))
    hf["timestamp"] = {"dtype": "float32", "_type": "Value"}
    for key in INDEX_FEATURES[1:]:
        fields.append(pa.field(key, pa.int64()))
        hf[key] = {"dtype": "int64", "_type": "Value"}
    return pa.schema(fields, metadata={"huggingface": json.dumps({"info": {"features": hf}})})


def _hf_sequence(length: int) -> dict:
    return {"feature": {"dtype": "float32", "_type": "Value"}, "length": length, "_type": "Sequence"}


def episodes_schema(features: dict, video_keys: list[str]) -> pa.Schema:
    """The episodes metadata files' schema, in the column order of their writer."""
    i64, f64 = pa.int64(), pa.float64()
    fields = [
        ("episode_index", i64),
        ("tasks", pa.list_(pa.string())),
        ("length", i64),
        ("data/chunk_index", i64),
        ("data/file_index", i64),
        ("dataset_from_index", i64),
        ("dataset_to_index", i64),
    ]
    for key in video_keys:
        fields += [
            (f"videos/{key}/chunk_index", i64),
            (f"videos/{key}/file_index", i64),
            (f"videos/{key}/from_timestamp", f64),
            (f"videos/{key}/to_timestamp", f64),
        ]
    for name, ft in features.items():
        value = pa.list_(pa.list_(pa.list_(f64))) if ft["dtype"] == "video" else pa.list_(f64)
        for stat in ("min", "max", "mean", "std", "count", *QUANTILES):
            fields.append((f"stats/{name}/{stat}", pa.list_(i64) if stat == "count" else value))
    fields += [("meta/episodes/chunk_index", i64), ("meta/episodes/file_index", i64)]
    return pa.schema(fields)


def tasks_table(tasks: dict[str, int]) -> pa.Table:
    """meta/tasks.parquet as pandas writes LeRobot's DataFrame({"task_index": ...}, index=tasks)."""
    pandas = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [
            {"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}
        ],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64", "metadata": None},
            {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode", "numpy_type": "object", "metadata": None},
        ],
        "attributes": {},
    }  # fmt: skip
    return pa.table(
        {
            "task_index": pa.array(list(tasks.values()), pa.int64()),
            "__index_level_0__": pa.array(list(tasks), pa.string()),
        }
    ).replace_schema_metadata({"pandas": json.dumps(pandas)})


def write_dataset(out: str, manifest: dict, name: str, statistics: dict, root: Path, codec: str, crf: int) -> dict:
    """One dataset of an export as a LeRobot dataset at `root` (a new directory)."""
    entry = manifest["datasets"][name]
    if "control_hz" not in entry:
        raise LeRobotExportError(f"manifest.json: dataset '{name}' has no control_hz (an export of an older version)")
    fps_value = fps_of(entry["control_hz"])
    fps = Fraction(entry["control_hz"]).limit_denominator(1000)
    paths = [shard_path(out, s) for s in entry["shards"]]
    if not paths:
        raise LeRobotExportError(f"manifest.json: dataset '{name}' has no shards")
    names = open_ipc(paths[0]).schema.names
    cameras = [c for c in CAMERAS if c in names]
    state = "proprio" in names
    stats = statistics.get(name)
    if not stats or "action" not in stats:
        raise LeRobotExportError(f"dataset_statistics.json: no action statistics for '{name}'")
    if state and "proprio" not in stats:
        raise LeRobotExportError(f"dataset_statistics.json: '{name}' has a proprio column but no proprio statistics")
    state_dim = open_ipc(paths[0]).schema.field("proprio").type.list_size if state else 0
    columns = ["dataset", "episode_id", "step", "is_last", "language_instruction", "raw_action", *cameras]
    columns += ["proprio"] if state else []
    video_keys = [f"observation.images.{c}" for c in cameras]

    data = ParquetFiles(root, DATA_PATH, data_schema(state_dim), DATA_FILE_MB)
    videos = {c: VideoFiles(root, f"observation.images.{c}", VIDEO_FILE_MB) for c in cameras}
    tasks: dict[str, int] = {}
    totals = {"action": Accumulator(len(ACTION_NAMES)), **{k: Accumulator(1) for k in INDEX_FEATURES}}
    if state:
        totals["observation.state"] = Accumulator(state_dim)
    hists = {c: np.zeros((3, 256), np.int64) for c in cameras}
    shapes: dict[str, tuple] = {}
    episode_rows: list[dict] = []
    frames = 0
    meta = None
    try:
        for index, ep in enumerate(episodes_of(paths, columns, name)):
            t = ep.num_rows
            texts = [x or "" for x in ep.column("language_instruction").to_pylist()]  # per step: it may change
            ep_tasks = list(dict.fromkeys(texts))
            task_of = {x: tasks.setdefault(x, len(tasks)) for x in ep_tasks}
            frame_index = np.arange(t, dtype=np.int64)
            rows = {
                "action": ep.column("raw_action").combine_chunks(),
                **({"observation.state": ep.column("proprio").combine_chunks()} if state else {}),
                "timestamp": pa.array((frame_index / float(fps)).astype(np.float32)),
                "frame_index": pa.array(frame_index),
                "episode_index": pa.array(np.full(t, index, np.int64)),
                "index": pa.array(np.arange(frames, frames + t, dtype=np.int64)),
                "task_index": pa.array(np.array([task_of[x] for x in texts], np.int64)),
            }
            chunk, file = data.append(pa.table(rows))
            row = {
                "episode_index": index,
                "tasks": ep_tasks,
                "length": t,
                "data/chunk_index": chunk,
                "data/file_index": file,
                "dataset_from_index": frames,
                "dataset_to_index": frames + t,
            }
            ep_stats = {}
            for key, values in rows.items():
                flat = values.values if pa.types.is_fixed_size_list(values.type) else values
                x = flat.to_numpy(zero_copy_only=False).reshape(t, -1)
                totals[key].add(x)
                ep_stats[key] = vector_stats(x)
            for camera, key in zip(cameras, video_keys):
                where = f"dataset '{name}' episode {ep.column('episode_id')[0].as_py()} {camera}"
                mp4, hist, shape = encode_episode(ep.column(camera).to_pylist(), fps, codec, crf, where)
                if shapes.setdefault(key, shape) != shape:
                    raise LeRobotExportError(f"{where}: {shape} pixels, earlier episodes {shapes[key]}")
                row.update(videos[camera].append(mp4, t, fps))
                hists[camera] += hist
                ep_stats[key] = image_stats(hist, t)
            if meta is None:  # the first episode gave the frame sizes: the features are known
                features = info_features(len(ACTION_NAMES), state_dim, shapes, fps_value, codec)
                meta = ParquetFiles(root, EPISODES_PATH, episodes_schema(features, video_keys), DATA_FILE_MB)
            for feature in features:
                for stat, value in ep_stats[feature].items():
                    row[f"stats/{feature}/{stat}"] = np.asarray(value).tolist()
            episode_rows.append(row)
            if len(episode_rows) == 100:  # written in batches (their writer buffers 10)
                write_episode_rows(meta, episode_rows)
            frames += t
        if meta is None:
            raise LeRobotExportError(f"dataset '{name}': no episodes in its shards")
        write_episode_rows(meta, episode_rows)
    finally:
        data.close()
        for v in videos.values():
            v.close()
        if meta is not None:
            meta.close()

    listed = sum(s["num_rows"] for s in entry["shards"])
    if frames != listed:
        raise LeRobotExportError(f"dataset '{name}': {frames} rows in its shards, the manifest lists {listed}")
    n = stats.get("num_transitions")
    summary = {
        "action": accumulated_stats(totals["action"], stats["action"], n),
        **({"observation.state": accumulated_stats(totals["observation.state"], stats["proprio"], n)} if state else {}),
        **{key: image_stats(hists[c], frames) for c, key in zip(cameras, video_keys)},
        **{key: accumulated_stats(totals[key]) for key in INDEX_FEATURES},
    }
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": None,
        "total_episodes": index + 1,
        "total_frames": frames,
        "total_tasks": len(tasks),
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": DATA_FILE_MB,
        "video_files_size_in_mb": VIDEO_FILE_MB,
        "fps": fps_value,
        "splits": {"train": f"0:{index + 1}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if cameras else None,
        "features": features,
    }
    (root / "meta").mkdir(parents=True, exist_ok=True)
    pq.write_table(tasks_table(tasks), str(root / "meta" / "tasks.parquet"))
    (root / "meta" / "stats.json").write_text(json.dumps(jsonable(summary), indent=4))
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    return {"episodes": index + 1, "frames": frames, "tasks": len(tasks), "cameras": video_keys}


def write_episode_rows(meta: ParquetFiles, rows: list[dict]) -> None:
    """Episode metadata rows, labelled with the file they are written to."""
    if rows:
        chunk, file = meta.target(len(rows))
        for row in rows:
            row["meta/episodes/chunk_index"], row["meta/episodes/file_index"] = chunk, file
        meta.append(pa.Table.from_pylist(rows, schema=meta.schema))
        rows.clear()


# ---------------------------------------------------------------- the whole export


def export_lerobot(
    out: str,
    dest: str,
    datasets: list[str] | None = None,
    codec: str = "h264",
    crf: int | None = None,
    overwrite: bool = False,
    verify: bool = True,
    log=None,
) -> dict:
    """Every dataset of an export (or `datasets`) as a LeRobot dataset at DEST/<dataset>."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    if codec not in CODECS:
        raise LeRobotExportError(f"--codec {codec!r}: one of {sorted(CODECS)}")
    crf = CODECS[codec][1] if crf is None else crf
    out = export_dir(out)
    manifest = verify_manifest(out, check_hashes=verify)  # sizes always, sha256 unless verify=False
    names = list(manifest["datasets"]) if not datasets else datasets
    unknown = [n for n in names if n not in manifest["datasets"]]
    if unknown:
        raise LeRobotExportError(f"{out}: no dataset(s) {unknown} (it has {sorted(manifest['datasets'])})")
    if files.is_url(dest):
        raise LeRobotExportError(f"{dest}: LeRobot reads a local directory; write DEST locally")
    dest_dir = Path(dest)
    for name in names:
        if (dest_dir / name).exists() and not overwrite:
            raise LeRobotExportError(f"{dest_dir / name} exists (--overwrite replaces it)")
    statistics, _ = read_statistics(out, manifest)  # checked against the manifest's pin
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its settings at every episode otherwise
    summary = {}
    for name in names:
        t0 = time.perf_counter()
        final = dest_dir / name
        tmp = dest_dir / f".{name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            summary[name] = write_dataset(out, manifest, name, statistics, tmp, codec, crf)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        s = summary[name]
        log(
            f"lerobot: {name}: {s['episodes']} episode(s), {s['frames']} frame(s), {s['tasks']} task(s), "
            f"cameras {s['cameras']} -> {final} ({time.perf_counter() - t0:.1f}s)"
        )
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shards.lerobot", description="Write an export's datasets as LeRobot datasets (v3.0)."
    )
    parser.add_argument("out", metavar="OUT", help="the export (its directory or manifest.json)")
    parser.add_argument("dest", metavar="DEST", help="a local directory: one LeRobot dataset per DEST/<dataset>")
    parser.add_argument("--datasets", help="comma-separated datasets of the export (default: all)")
    parser.add_argument("--codec", default="h264", choices=sorted(CODECS), help="video codec (default h264)")
    parser.add_argument("--crf", type=int, help="constant rate factor (default: h264 23, av1 25; lower = better)")
    parser.add_argument("--overwrite", action="store_true", help="replace DEST/<dataset> if it exists")
    parser.add_argument("--no-verify", action="store_true", help="skip the shards' sha256 check (sizes still checked)")
    args = parser.parse_args(argv)
    try:
        export_lerobot(
            args.out,
            args.dest,
            [d for d in (args.datasets or "").split(",") if d],
            args.codec,
            args.crf,
            args.overwrite,
            verify=not args.no_verify,
        )
    except (LeRobotExportError, ManifestError, OSError) as e:
        print(f"shards.lerobot: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
