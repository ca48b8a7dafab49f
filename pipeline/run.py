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
from pipeline.report import plural
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
        first = plan.missing[0]["error"]
        more = f" (and {len(plan.missing) - 1} more)" if len(plan.missing) > 1 else ""
        hint = "; give a --split it has" if "split '" in first else "; fetch it or leave it out with --datasets"
        raise RunError(f"{first}{more}{hint}")
    check_out_dir(plan.options.out or plan.out)
    ownership.check_mixture(plan.out, plan.mixture.name)
    return RunContext(plan)


def run_stages(ctx: RunContext) -> dict:
    stages = ctx.options.stages
    timed = ctx.report.timed  # wall times: into timings.json and report.html, never report.json
    with timed("stats"):
        stats = stage_stats.run(ctx) if "stats" in stages else stage_stats.load(ctx)
    grid = None
    if "grids" in stages:
        with timed("grids"):
            grid = stage_grids.run(ctx, stats)
    elif "export" in stages:
        grid = stage_grids.load(ctx, stats)
    if "export" not in stages:
        return {}
    with timed("export (with depth)" if "depth" in stages else "export"):
        return stage_export.run(ctx, stats, grid, depth="depth" in stages)


def write_reports(ctx: RunContext, seconds: float, stopped: str | None = None) -> None:
    """report.json (deterministic), timings.json (wall times) and report.html (both, for a person)."""
    from pipeline.report import TIMINGS_FILE
    from pipeline.report.page import refresh_html

    write_json(ctx.path(REPORT_FILE), ctx.report.to_dict())
    runner = next((a.split("=", 1)[1] for a in ctx.beam_args if a.startswith("--runner=")), "DirectRunner")
    write_json(ctx.path(TIMINGS_FILE), ctx.report.timings_dict(seconds, runner, ctx.mixture.name, stopped))
    refresh_html(ctx.out)


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
        f"mixture '{ctx.mixture.name}': {plural(len(ctx.datasets), 'dataset')}, stages {','.join(options.stages)}, "
        f"output {ctx.out}"
    )
    try:
        with ownership.hold(ctx.out):
            try:
                with engine(options.runner, options.beam_args, options.dask_address, options.workers) as beam_args:
                    ctx.beam_args = tuple(beam_args)
                    summary = run_stages(ctx)
            except StrictError as e:
                write_reports(ctx, time.time() - t0, stopped=str(e))
                print(f"error: {e}", file=sys.stderr)
                return 1
            write_reports(ctx, time.time() - t0)
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
        f"done in {seconds:.1f}s: {plural(len(ctx.datasets), 'dataset')}, "
        f"{plural(sum(r.episodes_read.values()), 'episode')}, {plural(sum(r.steps_read.values()), 'step')}"
    ]
    if summary:
        lines.append(f"  shards: {summary['shards']} ({summary['bytes'] / 1e6:.1f} MB) -> {ctx.path('manifest.json')}")
    lines += r.summary_lines(ctx.path(REPORT_FILE))
    for name, n in sorted(r.not_sampled.items()):
        if n:
            lines.append(f"  note: {name}: {n} step(s) that do not move are kept for action chunks, never sampled")
    for note in r.notes:
        lines.append(f"  note: {note}")
    lines.append(f"  report: {ctx.path('report.html')} (open it in a browser)")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
