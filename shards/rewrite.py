"""Rewrite an export's shards in place of reading RLDS again: new action tokens (a new grid) and/or
images at a new size. Row counts and every other column are unchanged.

    jobs = plan_rewrite(out_dir, manifest, grid_json, image_size)   # one job per shard
    rewrite_shard(job, encode_tokens)                                 # anywhere: a loop or a Beam job
    commit_rewrite(out_dir, manifest, jobs, grid_json, image_size)    # the atomic switch

Each shard is written under a new name beside the old one; the manifest is then switched
atomically to the new files, and only after the switch are the old files removed. Tokens come
from a callable (normalized actions [N, 7] -> int32 [N, 3]) so that this room needs no grid code.
A shard is read through its checksums (a corrupted batch is refused, never rewritten under fresh
checksums) and written with new ones, which the new manifest pins.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from shards.integrity import PIN_KEY
from shards.manifest import MANIFEST_FILE, ManifestError, grid_relpath, owned_shard_path, shard_path
from shards.schema import ShardFile, checksums_pin, write_table
from storage import files
from storage.jsonio import sha256_of, write_json
from transforms.frames import prepare_frames, scale_intrinsics


def _renamed(relpath: str, tag: str) -> str:
    stem = relpath.rsplit(".arrow", 1)[0].split(".r-")[0]
    return f"{stem}.r-{tag}.arrow"


def plan_rewrite(out_dir: str, manifest: dict, grid_json: dict | None, image_size: int | None) -> list[dict]:
    tag = sha256_of([grid_json, image_size])[:8]
    return [
        {
            "src": owned_shard_path(out_dir, s["path"]),  # never a file outside OUT/shards
            "dst": owned_shard_path(out_dir, _renamed(s["path"], tag)),
            "dataset": name,
            "expect": {k: s[k] for k in ("path", "num_rows", "bytes", "sha256", PIN_KEY) if k in s},
            "tag": tag,
            "grid": grid_json is not None,
            "image_size": image_size,
        }
        for name, ds in manifest["datasets"].items()
        for s in ds["shards"]
    ]


def rewrite_shard(job: dict, encode_tokens: Callable[[np.ndarray], np.ndarray] | None = None) -> dict:
    """Read one shard, replace the columns asked for, write it under its new name."""
    expect = job.get("expect") or {}
    where = f"shard {expect.get('path', job['src'])} of dataset '{job.get('dataset')}'"
    table = ShardFile(job["src"], expect, where, verify=bool(expect)).read()
    if job["grid"]:
        action = table.column("action").combine_chunks()
        tokens = encode_tokens(action.values.to_numpy(zero_copy_only=False).reshape(-1, 7))
        column = pa.FixedSizeListArray.from_arrays(pa.array(np.asarray(tokens, np.int32).reshape(-1), pa.int32()), 3)
        table = table.set_column(table.schema.get_field_index("action_tokens"), "action_tokens", column)
    if job["image_size"]:
        for name in ("image", "wrist_image"):
            if name in table.column_names:
                frames = np.array(table.column(name).to_pylist(), dtype=object)
                jpegs, _ = prepare_frames(frames, job["image_size"])
                table = table.set_column(table.schema.get_field_index(name), name, pa.array(jpegs, pa.binary()))
    tmp = files.temporary_name(job["dst"])
    with files.open_file(tmp, "wb") as f:
        pins = write_table(f, table)
    files.rename(tmp, job["dst"])
    return {"src": job["src"], "dst": job["dst"], "num_rows": table.num_rows, **pins}


def commit_rewrite(
    out_dir: str, manifest: dict, jobs: list[dict], grid_json: dict | None, image_size: int | None
) -> dict:
    """The new manifest, switched to atomically; the old shards removed after the switch."""
    new = copy.deepcopy(manifest)
    tag = jobs[0]["tag"] if jobs else sha256_of([grid_json, image_size])[:8]
    for ds in new["datasets"].values():
        for s in ds["shards"]:
            s["path"] = _renamed(s["path"], tag)
            full = shard_path(out_dir, s)
            if not files.exists(full):
                raise ManifestError(f"shard {s['path']} was not written")
            s.update(sha256=files.sha256_file(full), bytes=files.size(full))
            s[PIN_KEY] = checksums_pin(full)
        if image_size:
            intr = ds["intrinsics"]
            scaled = scale_intrinsics(
                intr["fx"],
                intr["fy"],
                intr["cx"],
                intr["cy"],
                (intr["width"], intr["height"]),
                (image_size, image_size),
            )
            ds["intrinsics"] = {
                **intr,
                **dict(zip(("fx", "fy", "cx", "cy"), scaled)),
                "width": image_size,
                "height": image_size,
            }
    if image_size:
        new["image_size"] = image_size
    if grid_json is not None:
        grid_rel = grid_relpath(f"{new['mixture']}.r-{tag}")
        write_json(files.join(out_dir, grid_rel), grid_json)
        new["grid"], new["grid_sha256"] = grid_rel, sha256_of(grid_json)
    write_json(files.join(out_dir, MANIFEST_FILE), new)  # the switch
    keep = {shard_path(out_dir, s) for ds in new["datasets"].values() for s in ds["shards"]}
    for job in jobs:
        if job["src"] not in keep:
            files.remove(job["src"])
    return new
