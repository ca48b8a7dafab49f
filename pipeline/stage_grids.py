"""Stage 2: the mixture's adaptive action grid (OUT/grids/<mixture>.json)."""
from __future__ import annotations

import io

import numpy as np

from pipeline.stages import TOOL_VERSION, RunContext, RunError, log, sha256_of, write_json


def grid_path(ctx: RunContext) -> str:
    return ctx.path("grids", f"{ctx.mixture.name}.json")


def fit_datasets(ctx: RunContext) -> list[str]:
    exclude = getattr(ctx.args, "grid_exclude", None)
    if exclude is None:
        excluded = {n for n, c in ctx.configs.items() if c.grid_fit_excluded}
    else:
        excluded = {s.strip() for s in exclude.split(",") if s.strip() and s.strip() != "none"}
    names = [n for n in ctx.mixture.weights if n not in excluded]
    if not names:
        log("grids: every dataset of the mixture is on the exclusion list; fitting on all of them")
        names = list(ctx.mixture.weights)
    return names


def save_accumulator(acc, path: str) -> None:
    from apache_beam.io.filesystems import FileSystems

    buf = io.BytesIO()
    np.savez(buf, weight=acc.weight, mean=acc.mean, m2=acc.m2, hist=acc.hist, sample_hash=acc.sample_hash,
             sample_actions=acc.sample_actions, sample_weight=acc.sample_weight)
    with FileSystems.create(path) as f:
        f.write(buf.getvalue())


def load_accumulator(path: str):
    from apache_beam.io.filesystems import FileSystems

    from grids.fit import FitAccumulator

    with FileSystems.open(path) as f:
        z = np.load(io.BytesIO(f.read()))
    acc = FitAccumulator()
    acc.weight, acc.mean, acc.m2, acc.hist = float(z["weight"]), z["mean"], z["m2"], z["hist"]
    acc.sample_hash, acc.sample_actions, acc.sample_weight = z["sample_hash"], z["sample_actions"], z["sample_weight"]
    return acc


def run(ctx: RunContext, stats: dict):
    import apache_beam as beam

    from beam_jobs.read import ReadStandardEpisodes, plan_reads
    from beam_jobs.grid_fit import GridFitFn
    from grids.grid import empirical_grid, grid_from_gaussians, uniform_grid
    from grids.metrics import grid_metrics
    from pipeline.mixing import effective_weights
    from transforms.normalize import normalize

    names = fit_datasets(ctx)
    weights = {n: ctx.mixture.weights[n] for n in names}
    effective = effective_weights(weights, {n: stats[n]["num_transitions"] for n in names})
    step_weight = {n: effective[n] / stats[n]["num_transitions"] for n in names}
    mode = ctx.args.normalization
    log(f"grids: fitting on {len(names)} dataset(s) weighted as the trainer samples them")

    tasks = plan_reads({n: ctx.datasets[n] for n in names}, ctx.args.split, ctx.args.max_episodes)
    acc_path = ctx.path(".work", "grids", "fit.npz")
    with beam.Pipeline(options=ctx.pipeline_options()) as p:
        read = p | "Read" >> ReadStandardEpisodes(tasks, ctx.configs)
        (read.episodes
         | "Normalize" >> beam.Map(lambda e: (e.episode_id, normalize(e.action, stats[e.dataset]["action"], mode),
                                              step_weight[e.dataset]))
         | "Fit" >> beam.CombineGlobally(GridFitFn())
         | "Save" >> beam.Map(save_accumulator, acc_path))
    acc = load_accumulator(acc_path)
    if acc.weight <= 0:
        raise RunError("grids: no actions to fit the grid on")
    gs = acc.gs_params()
    counts = getattr(ctx.args, "grid_counts", None)
    provenance = {"mixture": ctx.mixture.name, "datasets": names,
                  "excluded": [n for n in ctx.mixture.weights if n not in names],
                  "weights": weights, "effective_weights": effective, "normalization": mode,
                  "statistics_sha256": sha256_of(stats), "split": ctx.args.split,
                  "max_episodes": ctx.args.max_episodes, "tool_version": TOOL_VERSION}
    candidates = {"gaussian": grid_from_gaussians(gs, counts, provenance=provenance),
                  "empirical": empirical_grid(acc.histograms(), counts, gs_params=gs, provenance=provenance),
                  "uniform": uniform_grid(counts, provenance=provenance)}
    grid = candidates[ctx.args.grid_fit]
    sample, sample_w = acc.sample_actions, acc.sample_weight
    grid.metrics = grid_metrics(grid, sample, sample_w)
    grid.metrics["comparison"] = {
        name: {k: m[k] for k in ("token_entropy", "translation_token_entropy", "rotation_token_entropy",
                                 "mean_quantization_error")}
        for name, g in candidates.items() for m in [grid_metrics(g, sample, sample_w)]}
    write_json(grid_path(ctx), grid.to_json())
    c = grid.metrics["comparison"]
    log(f"grids: wrote {grid_path(ctx)} ({grid.distribution}); token entropy "
        + ", ".join(f"{k} {v['token_entropy']:.3f}" for k, v in c.items()))
    return grid


def load(ctx: RunContext):
    from grids.grid import ActionGrid, GridFileError

    path = grid_path(ctx)
    try:
        from pipeline.stages import read_json

        return ActionGrid.from_json(read_json(path), path)
    except (OSError, ValueError) as e:
        if isinstance(e, GridFileError):
            raise RunError(str(e)) from None
        raise RunError(f"{path} is missing: run the 'grids' stage first") from None
