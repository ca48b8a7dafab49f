"""Stage 1: per-dataset action statistics (dataset_statistics.json), cached by content."""
from __future__ import annotations

import json

from pipeline.stages import RunContext, RunError, StrictError, log, read_json, read_lines, write_json, write_lines

STATISTICS_FILE = "dataset_statistics.json"


def cache_key(ctx: RunContext, name: str) -> str:
    from pipeline.rlds import fingerprint
    from transforms.standardize import TRANSFORM_VERSION

    cfg = ctx.configs[name]
    extra = json.dumps([TRANSFORM_VERSION, ctx.args.split, ctx.args.max_episodes, cfg.action, cfg.proprio],
                       sort_keys=True)
    return fingerprint(ctx.datasets[name], ctx.args.split, extra)


def run(ctx: RunContext) -> dict:
    import apache_beam as beam

    from beam_jobs.read import ReadStandardEpisodes, plan_reads
    from beam_jobs.stats import ComputeStatistics

    stats, todo = {}, {}
    for name in ctx.datasets:
        key = cache_key(ctx, name)
        cached = ctx.path(".cache", "statistics", f"{name}-{key[:20]}.json")
        try:
            entry = read_json(cached)
            stats[name] = entry["statistics"]
            ctx.report.add_problems(entry["problems"])
        except (OSError, ValueError, KeyError):
            todo[name] = cached
    if stats:
        log(f"stats: {len(stats)} dataset(s) unchanged since the last run, statistics read from the cache "
            f"({', '.join(sorted(stats))})")

    if todo:
        log(f"stats: computing statistics of {len(todo)} dataset(s) (actions only, no image decoded)")
        tasks = plan_reads({n: ctx.datasets[n] for n in todo}, ctx.args.split, ctx.args.max_episodes)
        work = ctx.path(".work", "stats")
        with beam.Pipeline(options=ctx.pipeline_options()) as p:
            read = p | "Read" >> ReadStandardEpisodes(tasks, ctx.configs, proprio=True)
            computed = read.episodes | "Statistics" >> ComputeStatistics()
            write_lines(computed, f"{work}/statistics.jsonl", "Stats")
            write_lines(read.bad, f"{work}/problems.jsonl", "Problems")
        problems = read_lines(f"{work}/problems.jsonl")
        ctx.report.add_problems(problems)
        for name, value in read_lines(f"{work}/statistics.jsonl"):
            stats[name] = value
            write_json(todo[name], {"statistics": value, "problems": [q for q in problems if q["dataset"] == name]})

    empty = [n for n in ctx.datasets if n not in stats]
    if empty:
        lost = [p for p in ctx.report.dropped if p["dataset"] == empty[0]]
        why = f" ({len(lost)} problem(s), first: {lost[0]['reason']})" if lost else ""
        raise RunError(f"dataset '{empty[0]}': no usable episodes in split '{ctx.args.split}'{why}")

    if ctx.args.strict and ctx.report.problems:
        raise StrictError(f"--strict: {len(ctx.report.problems)} problem(s) in the input, first: "
                          f"{ctx.report.first_problem_line()}")
    ordered = {name: stats[name] for name in ctx.mixture.weights}
    for name, s in ordered.items():
        ctx.report.episodes_read[name] = s["num_trajectories"]
        ctx.report.steps_read[name] = s["num_transitions"]
    write_json(ctx.path(STATISTICS_FILE), ordered)
    log(f"stats: wrote {ctx.path(STATISTICS_FILE)}")
    return ordered


def load(ctx: RunContext) -> dict:
    path = ctx.path(STATISTICS_FILE)
    try:
        stats = read_json(path)
    except (OSError, ValueError):
        raise RunError(f"{path} is missing or unreadable: run the 'stats' stage first") from None
    missing = [n for n in ctx.datasets if n not in stats]
    if missing:
        raise RunError(f"{path} has no statistics for dataset '{missing[0]}': run the 'stats' stage")
    for name in ctx.datasets:
        ctx.report.episodes_read[name] = stats[name]["num_trajectories"]
        ctx.report.steps_read[name] = stats[name]["num_transitions"]
    return {n: stats[n] for n in ctx.mixture.weights}
