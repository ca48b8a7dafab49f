"""python -m pipeline.run: the main job (statistics, grids, depth, export) over a mixture.

    python -m pipeline.run --mixture oxe_magic_soup                 # on the built-in sample corpus
    python -m pipeline.run --mixture bridge --data-dir /data/oxe     # on a local OXE mirror
    python -m pipeline.run --mixture oxe_magic_soup --dry-run        # the resolved plan as JSON
    python -m pipeline.run --mixture my_mix.yaml -- --runner=DataflowRunner --project=...

Everything after `--` is passed to Beam as pipeline options. Each stage is a Beam pipeline; the
driver plans, runs them in order and writes what they computed (pipeline/stage_*.py).
"""

from __future__ import annotations

import errno
import json
import os
import sys
import time

from beam_jobs.engine import engine
from manifests.registry import RegistryError
from pipeline import ownership, stage_export, stage_grids, stage_stats
from pipeline.context import RunContext, RunError, StrictError, log
from pipeline.options import UsageError, parse_options
from pipeline.plan import make_plan
from shards.manifest import REPORT_FILE
from storage import files
from storage.jsonio import write_json


def check_out_dir(out: str) -> None:
    """An output path that is a file, or a local directory that cannot be written: refuse early."""
    local = files.local_path(out)
    if local is None:
        return
    if files.exists(local) and not files.isdir(local):
        raise RunError(f"--out '{out}' is a file, not a directory")
    parent = local
    while not os.path.exists(parent):
        parent = os.path.dirname(parent) or "."
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RunError(f"--out '{out}': directory '{parent}' is not writable")


def make_context(plan) -> RunContext:
    if plan.missing:
        more = f" (and {len(plan.missing) - 1} more)" if len(plan.missing) > 1 else ""
        raise RunError(f"{plan.missing[0]['error']}{more}; fetch it or leave it out with --datasets")
    check_out_dir(plan.options.out or plan.out)
    ownership.check_mixture(plan.out, plan.mixture.name)
    return RunContext(plan)


def run_stages(ctx: RunContext) -> dict:
    stages = ctx.options.stages
    stats = stage_stats.run(ctx) if "stats" in stages else stage_stats.load(ctx)
    grid = None
    if "grids" in stages:
        grid = stage_grids.run(ctx, stats)
    elif "export" in stages:
        grid = stage_grids.load(ctx, stats)
    return stage_export.run(ctx, stats, grid, depth="depth" in stages) if "export" in stages else {}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    t0 = time.time()
    try:
        options = parse_options(argv)
        plan = make_plan(options)
        if options.dry_run:
            print(json.dumps(plan.to_json(), indent=2))
            return 0
        ctx = make_context(plan)
    except (UsageError, RegistryError, RunError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    log(
        f"mixture '{ctx.mixture.name}': {len(ctx.datasets)} datasets, stages {','.join(options.stages)}, "
        f"output {ctx.out}"
    )
    try:
        with ownership.hold(ctx.out):
            try:
                with engine(options.runner, options.beam_args, options.dask_address, options.workers) as beam_args:
                    ctx.beam_args = tuple(beam_args)
                    summary = run_stages(ctx)
            except StrictError as e:
                write_json(ctx.path(REPORT_FILE), ctx.report.to_dict())
                print(f"error: {e}", file=sys.stderr)
                return 1
            write_json(ctx.path(REPORT_FILE), ctx.report.to_dict())
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        if not out_of_space(e):
            raise
        print(f"error: no space left on the device of {ctx.out}: free some and run again "
              "(finished work is reused)", file=sys.stderr)  # fmt: skip
        return 2
    print_summary(ctx, summary, time.time() - t0)
    return 0


def out_of_space(e: BaseException) -> bool:
    """ENOSPC anywhere in the exception's chain, or in a message a runner wrapped it in."""
    while e is not None:
        if getattr(e, "errno", None) == errno.ENOSPC or "No space left on device" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


def print_summary(ctx: RunContext, summary: dict, seconds: float) -> None:
    r = ctx.report
    lines = [
        f"done in {seconds:.1f}s: {len(ctx.datasets)} datasets, {sum(r.episodes_read.values())} episodes, "
        f"{sum(r.steps_read.values())} steps"
    ]
    if summary:
        lines.append(f"  shards: {summary['shards']} ({summary['bytes'] / 1e6:.1f} MB) -> {ctx.path('manifest.json')}")
    if r.dropped:
        lines.append(
            f"  dropped: {r.episodes_lost()} episodes ({len(r.dropped)} problems; see {ctx.path(REPORT_FILE)})"
        )
        reasons: dict[str, int] = {}
        for p in r.dropped:
            key = f"{p['dataset']}: {p['reason'].split(' (')[0]}"
            reasons[key] = reasons.get(key, 0) + p["episodes_lost"]
        lines += [f"    {n} x {k}" for k, n in sorted(reasons.items())[:10]]
    else:
        lines.append("  dropped: nothing")
    for name, n in sorted(r.not_sampled.items()):
        if n:
            lines.append(f"  note: {name}: {n} step(s) that do not move are kept for action chunks, never sampled")
    for note in r.notes:
        lines.append(f"  note: {note}")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
