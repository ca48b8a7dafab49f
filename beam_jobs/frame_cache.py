"""The frame cache: each export task's frames (primary image at the export size, wrist image,
depth) kept for the next run that needs the same frames, so that a change of grid, weights or
normalization, or one more dataset in the mixture, re-tokenizes without decoding an image.

    FRAMES/<dataset>/<key>/<source file>.<start>-<stop>.arrow

One Arrow IPC file per read task (episodes [start, stop) of one RLDS file): the frame columns,
episode after episode, and in its schema metadata the task's index: the episodes with their row
counts, every problem the full read of the task met (so a cached task reports exactly what an
encoding one does) and the sizes of the source frames. Written under a temporary name and
renamed: an entry is complete or absent, and two runs that share a cache may write the same entry.

<key> covers everything the frames depend on: the dataset's input fingerprint (files, sizes,
modification times, head and tail bytes, the split read), the transform (which steps survive), the
image keys, the export image size, the depth model, the seed where it picks the camera (DROID),
the frame code itself (transforms/frames.py) and the tool version. Frames of other settings or
inputs are never served; an entry no longer used is only wasted space (see stage_export for how
they are cleaned).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path

import pyarrow as pa

from sources.episodes import ReadTask
from storage import files
from storage.jsonio import sha256_of

FRAME_COLUMNS = ("image", "wrist_image", "depth")
FORMAT = 1
INDEX_KEY = b"spatial_pipeline.frames"
_FRAMES_CODE = None


def frames_code() -> str:
    """sha256 of the frame code: a change in how frames are converted never serves old frames."""
    global _FRAMES_CODE
    if _FRAMES_CODE is None:
        import transforms.frames

        _FRAMES_CODE = hashlib.sha256(Path(transforms.frames.__file__).read_bytes()).hexdigest()
    return _FRAMES_CODE


def frames_key(tool_version: str, fingerprint: str, cfg, image_size: int, depth: dict | None, seed: int) -> str:
    """The key of a dataset's frames under one run's settings (`cfg`: its DatasetConfig)."""
    from transforms.standardize import TRANSFORM_VERSION

    images = {"primary": cfg.primary_image, "choices": list(cfg.primary_choices), "wrist": cfg.wrist_image}
    return sha256_of(
        [
            FORMAT,
            tool_version,
            TRANSFORM_VERSION,
            frames_code(),
            fingerprint,
            cfg.transform_spec(),
            images,
            image_size,
            depth,
            seed if cfg.primary_choices else None,  # the seed only decides the camera
        ]
    )[:20]


def entry_name(task: ReadTask) -> str:
    """The entry's file name: the RLDS file's name (made file-name safe) and the episode range."""
    base = task.shard.path.rstrip("/").rsplit("/", 1)[-1]
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", base)
    if safe != base:
        safe += "-" + hashlib.sha256(base.encode()).hexdigest()[:8]
    return f"{safe}.{task.shard.start}-{task.shard.stop}.arrow"


def write_frames(path: str, schema: pa.Schema, tables: list[pa.Table], index: dict) -> None:
    meta = {INDEX_KEY: json.dumps({"format": FORMAT, **index}, sort_keys=True).encode()}
    schema = schema.with_metadata(meta)
    tmp = files.temporary_name(path)
    with files.open_file(tmp, "wb") as f, pa.ipc.new_file(f, schema) as w:
        for t in tables:
            w.write_table(t.replace_schema_metadata(meta))
    files.rename(tmp, path)


def read_frames(path: str) -> tuple[pa.Table, dict]:
    """(the frame columns, the task's index) of an entry; ValueError when it is not one of ours."""
    with files.open_file(path, "rb") as f:
        reader = pa.ipc.open_file(pa.py_buffer(f.read()))
    index = json.loads((reader.schema.metadata or {}).get(INDEX_KEY, b"null"))
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise ValueError(f"{path}: not a frame cache entry of format {FORMAT}")
    table = reader.read_all()
    if table.num_rows != sum(e["rows"] for e in index["episodes"]):
        raise ValueError(f"{path}: {table.num_rows} rows, its index lists another count")
    return table, index


def first_frame_size(frames) -> str | None:
    """ "HxW" of an episode's first encoded frame, from its header (nothing decoded); None if unreadable."""
    if frames is None or not len(frames):
        return None
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(bytes(frames[0]))) as im:
            w, h = im.size
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    return f"{h}x{w}"
