"""Stage 2: the mixture's adaptive action grid (OUT/grids/<mixture>.json)."""

from __future__ import annotations

import io

import numpy as np

from grids.fit import FitAccumulator
from grids.grid import ActionGrid, GridFileError, empirical_grid, grid_from_gaussians, uniform_grid
from grids.metrics import grid_metrics
from manifests.weights import effective_weights
from pipeline import __version__
from pipeline.context import RunContext, RunError, log
from storage import files
from storage.jsonio import read_json, sha256_of, write_json
from transforms.normalize import normalize


def fit_datasets(ctx: RunContext) -> list[str]:
    exclude = ctx.options.grid_exclude
    if exclude is None:
        excluded = {n for n, c in ctx.configs.items() if c.grid_fit_excluded}
    else:
        excluded = set(exclude)
    names = [n for n in ctx.mixture.weights if n not in excluded]
    if not names:
        log("grids: every dataset of the mixture is on the exclusion list; fitting on all of them")
        names = list(ctx.mixture.weights)
    return names


def save_accumulator(acc: FitAccumulator, path: str) -> None:
    buf = io.BytesIO()
    np.savez(
        buf,
        weight=acc.weight,
        mean=acc.mean,
        m2=acc.m2,
        hist=acc.hist,
        sample_hash=acc.sample_hash,
        sample_actions=acc.sample_actions,
        sample_weight=acc.sample_weight,
    )
    files.write_bytes(path, buf.getvalue())


def load_accumulator(path: str) -> FitAccumulator:
    z = np.load(io.BytesIO(files.read_bytes(path)))
    acc = FitAccumulator()
    acc.weight, acc.mean, acc.m2, acc.hist = float(z["weight"]), z["mean"], z["m2"], z["hist"]
    acc.sample_hash, acc.sample_actions, acc.sample_weight = z["sample_hash"], z["sample_actions"], z["sample_weight"]
    return acc


def run(ctx: RunContext, stats: dict) -> ActionGrid:
    import apache_beam as beam

    from beam_jobs.combines import GridFitFn
    from beam_jobs.reading import ReadStandardEpisodes
    from sources.episodes import plan_reads

    names = fit_datasets(ctx)
    weights = {n: ctx.mixture.weights[n] for n in names}
    effective = effective_weights(weights, {n: stats[n]["num_transitions"] for n in names})
    step_weight = {n: effective[n] / stats[n]["num_transitions"] for n in names}
    mode = ctx.options.normalization
    log(f"grids: fitting on {len(names)} dataset(s) weighted as the trainer samples them")

    tasks = plan_reads({n: ctx.datasets[n] for n in names}, ctx.options.split, ctx.options.max_episodes)
    acc_path = ctx.path(".work", "grids", "fit.npz")
    with beam.Pipeline(options=ctx.pipeline_options()) as p:
        read = p | "Read" >> ReadStandardEpisodes(tasks, ctx.configs)
        (
            read.episodes
            | "Normalize"
            >> beam.Map(
                lambda e: (e.episode_id, normalize(e.action, stats[e.dataset]["action"], mode), step_weight[e.dataset])
            )
            | "Fit" >> beam.CombineGlobally(GridFitFn(ctx.options.seed))
            | "Save" >> beam.Map(save_accumulator, acc_path)
        )
    acc = load_accumulator(acc_path)
    if acc.weight <= 0:
        raise RunError("grids: no actions to fit the grid on")
    gs = acc.gs_params()
    provenance = {
        "mixture": ctx.mixture.name,
        "datasets": names,
        "excluded": [n for n in ctx.mixture.weights if n not in names],
        "weights": weights,
        "effective_weights": effective,
        "normalization": mode,
        "statistics_sha256": sha256_of(stats),
        "split": ctx.options.split,
        "max_episodes": ctx.options.max_episodes,
        "tool_version": __version__,
    }
    candidates = {
        "gaussian": grid_from_gaussians(gs, provenance=provenance),
        "empirical": empirical_grid(acc.histograms(), gs_params=gs, provenance=provenance),
        "uniform": uniform_grid(provenance=provenance),
    }
    grid = candidates[ctx.options.grid_fit]
    sample, sample_w = acc.sample_actions, acc.sample_weight
    grid.metrics = grid_metrics(grid, sample, sample_w)
    grid.metrics["comparison"] = {
        name: {
            k: m[k]
            for k in ("token_entropy", "translation_token_entropy", "rotation_token_entropy", "mean_quantization_error")
        }
        for name, g in candidates.items()
        for m in [grid_metrics(g, sample, sample_w)]
    }
    write_json(ctx.grid_path, grid.to_json())
    c = grid.metrics["comparison"]
    log(
        f"grids: wrote {ctx.grid_path} ({grid.distribution}); token entropy "
        + ", ".join(f"{k} {v['token_entropy']:.3f}" for k, v in c.items())
    )
    return grid


def load(ctx: RunContext) -> ActionGrid:
    path = ctx.grid_path
    try:
        doc = read_json(path)
    except (OSError, ValueError):
        raise RunError(f"{path} is missing: run the 'grids' stage first") from None
    try:
        return ActionGrid.from_json(doc, path)
    except GridFileError as e:
        raise RunError(str(e)) from None
