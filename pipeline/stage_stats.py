"""Stage 1: per-dataset action statistics (dataset_statistics.json), cached by content."""

from __future__ import annotations

from pipeline.context import DataLossError, RunContext, RunError, StrictError, log
from shards.manifest import REPORT_FILE
from sources.episodes import problem
from storage.jsonio import read_json, sha256_of, write_json
from transforms.standardize import TRANSFORM_VERSION


def cache_key(ctx: RunContext, name: str) -> str:
    """Everything the statistics of a dataset depend on: its files, the read and the transform."""
    spec = [TRANSFORM_VERSION, ctx.options.split, ctx.options.max_episodes, ctx.configs[name].transform_spec()]
    return sha256_of([ctx.fingerprint(name), spec])


def cache_path(ctx: RunContext, name: str) -> str:
    return ctx.path(".cache", "statistics", f"{name}-{cache_key(ctx, name)[:20]}.json")


def run(ctx: RunContext) -> dict:
    from beam_jobs.collect import run_and_collect
    from beam_jobs.dataset_statistics import build_statistics
    from beam_jobs.progress import stage_progress, total_episodes
    from sources.episodes import plan_reads

    stats, todo = {}, {}
    for name in ctx.datasets:
        cached = cache_path(ctx, name)
        try:
            entry = read_json(cached)
            stats[name] = entry["statistics"]
            ctx.report.add_problems(entry["problems"])
        except (OSError, ValueError, KeyError):
            todo[name] = cached
    if stats:
        log(
            f"stats: {len(stats)} dataset(s) unchanged since the last run, statistics read from the cache "
            f"({', '.join(sorted(stats))})"
        )

    if todo:
        log(f"stats: computing statistics of {len(todo)} dataset(s) (actions only, no image decoded)")
        tasks = plan_reads({n: ctx.datasets[n] for n in todo}, ctx.options.split, ctx.options.max_episodes)
        ctx.progress = (lambda: 0, len(tasks))  # statistics are kept once all tasks are done
        with stage_progress("stats", total_episodes(tasks), ctx.beam_args):
            records = run_and_collect(
                lambda p: build_statistics(p, tasks, ctx.configs),
                ctx.beam_args,
                ctx.path(".work", "stats", "statistics.pkl"),
                key=lambda r: r[0],
            )
        for name, value, problems, notes in records:
            problems = problems + [problem(name, ctx.datasets[name].directory, note, None, 0) for note in notes]
            ctx.report.add_problems(problems)
            if value is not None:
                stats[name] = value
                write_json(todo[name], {"statistics": value, "problems": problems})

    empty = [n for n in ctx.datasets if n not in stats]
    if empty:
        lost = [p for p in ctx.report.dropped if p["dataset"] == empty[0]]
        why = (
            f" ({sum(p['episodes_lost'] for p in lost)} episode(s) lost, first: {lost[0]['reason']}; "
            f"see {ctx.path(REPORT_FILE)})"
            if lost
            else ""
        )
        raise DataLossError(
            ctx.report.fail(f"dataset '{empty[0]}': no usable episodes in split '{ctx.options.split}'{why}")
        )

    if ctx.options.strict and ctx.report.problems:
        raise StrictError(
            f"--strict: {len(ctx.report.problems)} problem(s) in the input, first: {ctx.report.first_problem_line()}"
        )
    ordered = {name: stats[name] for name in ctx.mixture.weights}
    for name, s in ordered.items():
        ctx.report.episodes_read[name] = s["num_trajectories"]
        ctx.report.steps_read[name] = s["num_transitions"]
    write_json(ctx.statistics_path, ordered)
    log(f"stats: wrote {ctx.statistics_path}")
    return ordered


def load(ctx: RunContext) -> dict:
    path = ctx.statistics_path
    try:
        stats = read_json(path)
    except (OSError, ValueError):
        raise RunError(f"{path} is missing or unreadable: run the 'stats' stage first") from None
    missing = [n for n in ctx.datasets if n not in stats]
    if missing:
        raise RunError(f"{path} has no statistics for dataset '{missing[0]}': run the 'stats' stage")
    for name in ctx.datasets:  # computed from these very inputs? (the stats stage caches what it computed)
        try:
            current = read_json(cache_path(ctx, name))["statistics"] == stats[name]
        except (OSError, ValueError, KeyError):
            current = False
        if not current:
            raise RunError(
                f"{path}: the statistics of dataset '{name}' were not computed from its current input and "
                "settings (the data or --split/--max-episodes changed): run the 'stats' stage"
            )
    for name in ctx.datasets:
        ctx.report.episodes_read[name] = stats[name]["num_trajectories"]
        ctx.report.steps_read[name] = stats[name]["num_transitions"]
    return {n: stats[n] for n in ctx.mixture.weights}
