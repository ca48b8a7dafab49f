"""python -m pipeline.run: the main job (statistics, grids, depth, export) over a mixture.

    python -m pipeline.run --mixture oxe_magic_soup                 # on the built-in sample corpus
    python -m pipeline.run --mixture bridge --data-dir /data/oxe     # on a local OXE mirror
    python -m pipeline.run --mixture oxe_magic_soup --dry-run        # the resolved plan as JSON
    python -m pipeline.run --mixture my_mix.yaml -- --runner=DataflowRunner --project=...

Everything after `--` is passed to Beam as pipeline options. Each stage is a Beam pipeline; the
driver plans, runs them in order and writes what they computed (pipeline/stage_*.py).
"""

from __future__ import annotations

import signal

if __name__ == "__main__":  # before any library starts a thread, which would inherit it: see Interrupt
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})

import _thread  # noqa: E402
import contextlib
import errno
import json
import logging
import os
import sys
import threading
import time

from beam_jobs.engine import engine
from manifests.registry import RegistryError
from pipeline import ownership, provenance, stage_export, stage_grids, stage_stats
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
        if "split '" in first:
            fix = "give a --split it has"
        elif not plan.missing[0]["found"]:
            fix = "fetch it or leave it out with --datasets"
        else:
            fix = "correct the config"
        raise RunError(f"{first}{more}; {fix}")
    check_out_dir(plan.options.out or plan.out)
    ownership.check_output(plan)
    return RunContext(plan)


def run_stages(ctx: RunContext) -> dict:
    stages = ctx.options.stages
    timed = ctx.report.timed  # wall times: into timings.json and report.html, never report.json
    with timed("stats"):
        stats = stage_stats.run(ctx) if "stats" in stages else stage_stats.load(ctx)
    grid = None
    if ctx.options.grid and ("grids" in stages or "export" in stages):
        grid = stage_grids.given(ctx)
    elif "grids" in stages:
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


class Interrupt:
    """SIGINT (Ctrl-C) and SIGTERM end a run with one line and exit 130; a second Ctrl-C ends it at once.

    The first raises KeyboardInterrupt in the driver and silences logging: a runner wraps the
    interrupt into its own error and logs that error's traceback while it unwinds; the run's one
    line says what was kept. Ctrl-C reaches a terminal's whole process group, and every process the
    run starts (Beam's worker processes, through a shell; a local dask cluster) would print its own
    traceback. So where every thread of the driver blocks SIGINT (the command line blocks it before
    any library starts a thread), SIGINT is ignored during the run, which the processes it starts
    keep (shells included), and a watcher thread takes it from the pending signals (a blocked signal
    is kept pending, not dropped) and interrupts the driver. Elsewhere (main() called in a process
    with other threads) SIGINT gets the usual handler."""

    happened = False

    @classmethod
    def handle(cls, signum, frame):
        if cls.happened:
            return  # the run is already unwinding
        cls.happened = True
        logging.disable(logging.CRITICAL)
        threading.excepthook = lambda args: None  # the runner's threads die with it, quietly
        raise KeyboardInterrupt

    @classmethod
    def _watch(cls) -> None:
        while signal.sigwait({signal.SIGINT, signal.SIGUSR2}) == signal.SIGINT:
            if cls.happened:  # a second Ctrl-C: the user does not want to wait for the clean-up
                print("interrupted twice: stopped at once", file=sys.stderr, flush=True)
                os._exit(130)
            _thread.interrupt_main(signal.SIGTERM)  # runs handle() in the driver's thread

    @staticmethod
    def _all_threads_block_sigint() -> bool:
        me = threading.get_native_id()
        try:
            for task in os.listdir("/proc/self/task"):
                if int(task) != me:
                    with open(f"/proc/self/task/{task}/status") as f:
                        mask = next(line for line in f if line.startswith("SigBlk:")).split()[1]
                    if not int(mask, 16) & (1 << (signal.SIGINT - 1)):
                        return False
        except (OSError, StopIteration, ValueError):
            return False
        return True

    @classmethod
    @contextlib.contextmanager
    def caught(cls):
        """Handlers installed for a run (the main thread only: signals are delivered there)."""
        cls.happened = False
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        hook = threading.excepthook
        term = signal.signal(signal.SIGTERM, cls.handle)
        shield = cls._all_threads_block_sigint()
        if shield:
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGUSR2})
            early = signal.SIGINT in signal.sigpending()  # Ctrl-C while the command started
            sigint = signal.signal(signal.SIGINT, signal.SIG_IGN)
            watcher = threading.Thread(target=cls._watch, name="interrupts", daemon=True)
            watcher.start()
        else:
            sigint = signal.signal(signal.SIGINT, cls.handle)
            mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        try:
            if shield and early:
                cls.handle(signal.SIGINT, None)
            yield
        finally:
            if shield:
                signal.pthread_kill(watcher.ident, signal.SIGUSR2)
                watcher.join(timeout=5)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a SIGINT still pending is ignored, then
            signal.signal(signal.SIGINT, sigint)
            signal.signal(signal.SIGTERM, term)
            threading.excepthook = hook
            if cls.happened:
                logging.disable(logging.NOTSET)


def interrupted_line(ctx: RunContext | None) -> str:
    if ctx is None or ctx.progress is None:
        return "interrupted: nothing kept yet; run the same command to resume"
    done, total = ctx.progress
    try:
        kept = done()
    except Exception:  # noqa: BLE001 -- a half-written part index counts as not kept
        kept = 0
    return f"interrupted: {kept} of {total} tasks kept; run the same command to resume"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    run: dict = {}  # the context, once there is one (what an interrupt reports)
    with Interrupt.caught():
        try:
            return _main(argv, run)
        except BaseException:
            if not Interrupt.happened:
                raise
        print(interrupted_line(run.get("ctx")), file=sys.stderr, flush=True)
        return 130


def _main(argv: list[str], run: dict) -> int:
    t0 = time.time()
    try:
        options = parse_options(argv)
        plan = make_plan(options)
        if options.dry_run:
            return dry_run(plan)
        ctx = run["ctx"] = make_context(plan)
    except (UsageError, RegistryError, RunError, files.StorageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    log(
        f"mixture '{ctx.mixture.name}': {plural(len(ctx.datasets), 'dataset')}, stages {','.join(options.stages)}, "
        f"output {ctx.out}"
    )
    try:
        with ownership.hold(ctx.out):
            fresh = provenance.up_to_date(ctx, ownership.existing_manifest(ctx.out))
            if fresh:
                print(fresh)
                return 0
            try:
                with engine(options.runner, options.beam_args, options.dask_address, options.workers) as beam_args:
                    ctx.beam_args = tuple(beam_args)
                    summary = run_stages(ctx)
            except StrictError as e:  # --strict, or a dataset that lost every episode: report.json says why
                write_reports(ctx, time.time() - t0, stopped=str(e))
                print(f"error: {e}", file=sys.stderr)
                return 1
            write_reports(ctx, time.time() - t0)
    except (RunError, files.StorageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        storage_error = files.storage_error_in(e)  # raised in a Beam worker, re-raised by the runner
        if storage_error:
            print(f"error: {storage_error}", file=sys.stderr)
            return 2
        if not out_of_space(e):
            raise
        print(f"error: no space left on the device of {ctx.out}: free some and run again "
              "(finished work is reused)", file=sys.stderr)  # fmt: skip
        return 2
    print_summary(ctx, summary, time.time() - t0)
    return 0


def dry_run(plan) -> int:
    """Print the plan as JSON; exit 2 (one line) when a dataset is missing or its config invalid."""
    view = plan.to_json()
    if not plan.missing and files.exists(files.join(plan.out, "manifest.json")):
        view["up_to_date"] = bool(provenance.up_to_date(RunContext(plan), ownership.existing_manifest(plan.out)))
    print(json.dumps(view, indent=2))
    if plan.missing:
        more = f" (and {len(plan.missing) - 1} more)" if len(plan.missing) > 1 else ""
        print(f"error: {plan.missing[0]['error']}{more}", file=sys.stderr)
        return 2
    return 0


def out_of_space(e: BaseException) -> bool:
    """ENOSPC anywhere in the exception's chain, or in a message a runner wrapped it in."""
    return (
        files.in_chain(e, lambda x: getattr(x, "errno", None) == errno.ENOSPC or "No space left on device" in str(x))
        is not None
    )


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
    synthetic = sorted(n for n in ctx.datasets if ctx.plan.synthetic(n))
    if synthetic:
        lines.append(
            f"  note: {len(synthetic)} of {len(ctx.datasets)} dataset(s) are the built-in sample corpus: synthetic "
            'data, not for training (manifest.json says so: "synthetic": true)'
        )
    lines.append(f"  report: {ctx.path('report.html')} (open it in a browser)")
    print("\n".join(lines))


if __name__ == "__main__":
    code = main()
    if code == 130:  # interrupted: leave at once, without waiting for the runner's threads to wind down
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
