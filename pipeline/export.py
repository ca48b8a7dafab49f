"""python -m pipeline.export: update an existing output without reading RLDS again.

    python -m pipeline.export OUT --grid new_grid.json      # re-tokenize: only action_tokens change
    python -m pipeline.export OUT --image-size 128          # re-encode only the images

A Beam job rewrites each shard (one element per shard) under a new name beside the old one;
the manifest is then switched atomically to the new files, and only after the switch are the
old files removed (shards.rewrite). Row counts and every other column are unchanged.
Arguments it does not know are Beam pipeline options.
"""

from __future__ import annotations

import argparse
import os
import sys

from grids.grid import ActionGrid, GridFileError
from pipeline.options import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE
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


EXAMPLES = """examples:
  python -m pipeline.export output/my_robot --grid my_robot_grid.json    # re-tokenize: only action_tokens change
  python -m pipeline.export output/my_robot --image-size 128             # re-encode the images only
(output/my_robot: an export of python -m pipeline.run; my_robot_grid.json: e.g. from python -m grids.rediscretize)
"""


def _export_dir_problem(out: str) -> str | None:
    """What is wrong with OUT as an export directory, before any work: a file, missing, no manifest."""
    local = files.local_path(out)
    if local is not None:
        if not os.path.exists(local):
            return f"'{out}' does not exist (give an output directory of python -m pipeline.run)"
        if not os.path.isdir(local):
            hint = " (give its directory)" if os.path.basename(local) == "manifest.json" else ""
            return f"'{out}' is a file, not an output directory{hint}"
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m pipeline.export",
        description=__doc__.split("\n\n")[0],
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("out", help="an output directory with manifest.json (local or a URL)")
    p.add_argument("--grid", help="a grid file: re-tokenize action_tokens with it")
    p.add_argument(
        "--image-size",
        type=int,
        help=f"re-encode images (and wrist images) at this square size ({MIN_IMAGE_SIZE}..{MAX_IMAGE_SIZE})",
    )
    args, beam_args = p.parse_known_args(argv)
    if not args.grid and args.image_size is None:
        print("error: nothing to do: give --grid and/or --image-size", file=sys.stderr)
        return 2
    if args.image_size is not None and not MIN_IMAGE_SIZE <= args.image_size <= MAX_IMAGE_SIZE:
        print(f"error: --image-size must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} pixels, got {args.image_size}",
              file=sys.stderr)  # fmt: skip
        return 2
    problem = _export_dir_problem(args.out)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        grid = ActionGrid.load(args.grid) if args.grid else None
        new = rewrite(args.out, grid, args.image_size, beam_args)
    except (GridFileError, ManifestError, files.StorageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        storage_error = files.storage_error_in(e)  # raised in a Beam worker, re-raised by the runner
        if storage_error:
            print(f"error: {storage_error}", file=sys.stderr)
            return 2
        raise
    rows = sum(s["num_rows"] for d in new["datasets"].values() for s in d["shards"])
    print(f"rewrote {sum(len(d['shards']) for d in new['datasets'].values())} shards ({rows} rows) in {args.out}")
    if files.exists(files.join(args.out, "report.json")):
        from pipeline.report.page import refresh_html

        refresh_html(args.out)  # the page shows the shards and grid the output now holds
    return 0


if __name__ == "__main__":
    sys.exit(main())
