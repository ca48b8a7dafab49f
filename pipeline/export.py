"""python -m pipeline.export: update an existing output without reading RLDS again.

    python -m pipeline.export OUT --grid new_grid.json      # re-tokenize: only action_tokens changes
    python -m pipeline.export OUT --image-size 128          # re-encode only the images

Each shard is rewritten (a Beam job, one element per shard) under a new name beside the old
one; the manifest is then switched atomically to the new files, and only after the switch
are the old files removed. Row counts and every other column are unchanged.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import pyarrow as pa

from pipeline.shards import ManifestError, file_sha256, verify_manifest, write_table


def _rewrite_shard(job: dict) -> dict:
    """Read one shard, replace the columns asked for, write it under its new name."""
    from grids.grid import ActionGrid
    from grids.tokenizer import ActionTokenizer
    from pipeline import images as imgs

    with pa.memory_map(job["src"]) as src:
        table = pa.ipc.open_file(src).read_all()
    if job.get("grid"):
        tok = ActionTokenizer(ActionGrid.from_json(job["grid"]))
        action = table.column("action").combine_chunks()
        tokens = tok.encode(action.values.to_numpy(zero_copy_only=False).reshape(-1, 7))
        column = pa.FixedSizeListArray.from_arrays(pa.array(tokens.reshape(-1), pa.int32()), 3)
        table = table.set_column(table.schema.get_field_index("action_tokens"), "action_tokens", column)
    if job.get("image_size"):
        for name in ("image", "wrist_image"):
            if name in table.column_names:
                frames = np.array(table.column(name).to_pylist(), dtype=object)
                jpegs, _ = imgs.prepare_frames(frames, job["image_size"])
                table = table.set_column(table.schema.get_field_index(name), name, pa.array(jpegs, pa.binary()))
    tmp = job["dst"] + ".tmp"
    with open(tmp, "wb") as f:
        write_table(f, table)
    os.replace(tmp, job["dst"])
    return {"src": job["src"], "dst": job["dst"], "num_rows": table.num_rows}


def rewrite(out_dir: str, grid=None, image_size: int | None = None, beam_args: list[str] | None = None) -> dict:
    """Rewrite every shard of out_dir with a new grid and/or image size; returns the new manifest."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipeline.stages import dumps, sha256_of

    manifest = verify_manifest(out_dir, check_hashes=True)
    grid_json = grid.to_json() if grid is not None else None
    tag = sha256_of([grid_json, image_size])[:8]
    jobs = []
    for name, ds in manifest["datasets"].items():
        for s in ds["shards"]:
            src = os.path.join(out_dir, s["path"])
            stem = s["path"].rsplit(".arrow", 1)[0].split(".r-")[0]
            jobs.append({"src": src, "dst": os.path.join(out_dir, f"{stem}.r-{tag}.arrow"),
                         "grid": grid_json, "image_size": image_size})
    with beam.Pipeline(options=PipelineOptions(beam_args or ["--runner=DirectRunner"])) as p:
        p | beam.Create(jobs) | beam.Reshuffle() | beam.Map(_rewrite_shard)
    new = json.loads(json.dumps(manifest))
    for name, ds in new["datasets"].items():
        for s in ds["shards"]:
            stem = s["path"].rsplit(".arrow", 1)[0].split(".r-")[0]
            path = f"{stem}.r-{tag}.arrow"
            full = os.path.join(out_dir, path)
            if not os.path.exists(full):
                raise ManifestError(f"shard {path} was not written")
            s.update(path=path, sha256=file_sha256(full), bytes=os.path.getsize(full))
        if image_size:
            from pipeline.ego3d import scale_intrinsics

            intr = ds["intrinsics"]
            scaled = scale_intrinsics(intr["fx"], intr["fy"], intr["cx"], intr["cy"], (intr["width"], intr["height"]),
                                      (image_size, image_size))
            ds["intrinsics"] = {**intr, **dict(zip(("fx", "fy", "cx", "cy"), scaled)),
                                "width": image_size, "height": image_size}
    if image_size:
        new["image_size"] = image_size
    if grid is not None:
        grid_rel = os.path.join("grids", f"{new['mixture']}.r-{tag}.json")
        with open(os.path.join(out_dir, grid_rel), "w") as f:
            f.write(dumps(grid_json))
        new["grid"], new["grid_sha256"] = grid_rel, sha256_of(grid_json)
    tmp = os.path.join(out_dir, "manifest.json.tmp")
    with open(tmp, "w") as f:
        f.write(dumps(new))
    os.replace(tmp, os.path.join(out_dir, "manifest.json"))  # the switch
    keep = {os.path.join(out_dir, s["path"]) for ds in new["datasets"].values() for s in ds["shards"]}
    for job in jobs:
        if job["src"] not in keep and os.path.exists(job["src"]):
            os.remove(job["src"])
    return new


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline.export", description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="an output directory with manifest.json")
    p.add_argument("--grid", help="a grid file: re-tokenize action_tokens with it")
    p.add_argument("--image-size", type=int, help="re-encode images (and wrist images) at this square size")
    args, beam_args = p.parse_known_args(argv)
    if not args.grid and not args.image_size:
        print("error: nothing to do: give --grid and/or --image-size", file=sys.stderr)
        return 2
    from grids.grid import ActionGrid, GridFileError

    try:
        grid = ActionGrid.load(args.grid) if args.grid else None
        new = rewrite(args.out, grid, args.image_size, beam_args)
    except (GridFileError, ManifestError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows = sum(s["num_rows"] for d in new["datasets"].values() for s in d["shards"])
    print(f"rewrote {sum(len(d['shards']) for d in new['datasets'].values())} shards ({rows} rows) in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
