"""python -m pipeline.export: update an existing output without reading RLDS again.

    python -m pipeline.export OUT --grid new_grid.json      # re-tokenize: only action_tokens changes
    python -m pipeline.export OUT --image-size 128          # re-encode only the images

A Beam job rewrites each shard (one element per shard) under a new name beside the old one;
the manifest is then switched atomically to the new files, and only after the switch are the
old files removed (shards.rewrite). Row counts and every other column are unchanged.
Arguments it does not know are Beam pipeline options.
"""

from __future__ import annotations

import argparse
import sys

from grids.grid import ActionGrid, GridFileError
from shards.manifest import ManifestError, verify_manifest
from shards.rewrite import commit_rewrite, plan_rewrite
from storage import files


def rewrite(
    out_dir: str, grid: ActionGrid | None = None, image_size: int | None = None, beam_args: list[str] | None = None
) -> dict:
    """Rewrite every shard of out_dir with a new grid and/or image size; returns the new manifest."""
    from beam_jobs.collect import run_and_collect
    from beam_jobs.engine import with_runner_defaults
    from beam_jobs.rewriting import RewriteShards

    manifest = verify_manifest(out_dir, check_hashes=True)
    grid_json = grid.to_json() if grid is not None else None
    jobs = plan_rewrite(out_dir, manifest, grid_json, image_size)
    done = run_and_collect(
        lambda p: p | "Rewrite" >> RewriteShards(jobs, grid_json),
        with_runner_defaults(beam_args or []),
        files.join(out_dir, ".work", "rewrite.pkl"),
        key=lambda r: r["dst"],
    )
    if len(done) != len(jobs):
        raise ManifestError(f"{out_dir}: {len(jobs) - len(done)} shard(s) were not rewritten")
    files.remove(files.join(out_dir, ".work"))
    return commit_rewrite(out_dir, manifest, jobs, grid_json, image_size)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline.export", description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="an output directory with manifest.json (local or a URL)")
    p.add_argument("--grid", help="a grid file: re-tokenize action_tokens with it")
    p.add_argument("--image-size", type=int, help="re-encode images (and wrist images) at this square size")
    args, beam_args = p.parse_known_args(argv)
    if not args.grid and not args.image_size:
        print("error: nothing to do: give --grid and/or --image-size", file=sys.stderr)
        return 2
    try:
        grid = ActionGrid.load(args.grid) if args.grid else None
        new = rewrite(args.out, grid, args.image_size, beam_args)
    except (GridFileError, ManifestError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows = sum(s["num_rows"] for d in new["datasets"].values() for s in d["shards"])
    print(f"rewrote {sum(len(d['shards']) for d in new['datasets'].values())} shards ({rows} rows) in {args.out}")
    if files.exists(files.join(args.out, "report.json")):
        from pipeline.report.page import refresh_html

        refresh_html(args.out)  # the page shows the shards and grid the output now holds
    return 0


if __name__ == "__main__":
    sys.exit(main())
