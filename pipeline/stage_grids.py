"""Stage 2: the mixture's adaptive action grid (OUT/grids/<mixture>.json)."""

from __future__ import annotations

from grids.fit import mixture_fit
from grids.grid import ActionGrid, GridFileError, empirical_grid, grid_from_gaussians, uniform_grid
from grids.metrics import fit_metrics, grid_metrics
from manifests.weights import effective_weights
from pipeline import __version__
from pipeline.context import RunContext, RunError, log
from storage import files
from storage.jsonio import read_json, sha256_of, write_json


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


def grid_provenance(ctx: RunContext, stats: dict) -> dict:
    """What a fitted grid was made from: kept in the grid file, and compared by a run that reuses it."""
    names = fit_datasets(ctx)
    weights = {n: ctx.mixture.weights[n] for n in names}
    return {
        "mixture": ctx.mixture.name,
        "datasets": names,
        "excluded": [n for n in ctx.mixture.weights if n not in names],
        "weights": weights,
        "effective_weights": effective_weights(weights, {n: stats[n]["num_transitions"] for n in names}),
        "normalization": ctx.options.normalization,
        "statistics_sha256": sha256_of(stats),
        "split": ctx.options.split,
        "max_episodes": ctx.options.max_episodes,
        "seed": ctx.options.seed,
        "tool_version": __version__,
    }


def fitted_source(ctx: RunContext) -> dict:
    return {"kind": "fitted", "fit": ctx.options.grid_fit}


def run(ctx: RunContext, stats: dict) -> ActionGrid:
    from beam_jobs.collect import run_and_collect
    from beam_jobs.grid_fit import build_grid_fit
    from beam_jobs.progress import stage_progress, total_episodes
    from sources.episodes import plan_reads

    provenance = grid_provenance(ctx, stats)
    names, effective = provenance["datasets"], provenance["effective_weights"]
    step_weight = {n: effective[n] / stats[n]["num_transitions"] for n in names}
    mode = ctx.options.normalization
    log(f"grids: fitting on {len(names)} dataset(s) weighted as the trainer samples them")

    tasks = plan_reads({n: ctx.datasets[n] for n in names}, ctx.options.split, ctx.options.max_episodes)
    ctx.progress = (lambda: 0, len(tasks))  # the fit is kept once all tasks are done
    with stage_progress("grids", total_episodes(tasks), ctx.beam_args):
        parts = run_and_collect(
            lambda p: build_grid_fit(p, tasks, ctx.configs, stats, mode, ctx.options.seed),
            ctx.beam_args,
            ctx.path(".work", "grids", "fit.pkl"),
            key=lambda r: r[0],
        )
    parts = dict(parts)
    try:
        fit = mixture_fit(parts, step_weight)
    except ValueError:
        raise RunError("grids: no actions to fit the grid on") from None
    gs = fit.gs_params
    candidates = {
        "gaussian": grid_from_gaussians(gs, provenance=provenance),
        "empirical": empirical_grid(fit.histograms, gs_params=gs, provenance=provenance),
        "uniform": uniform_grid(provenance=provenance),
    }
    grid = candidates[ctx.options.grid_fit]
    sample, sample_w = fit.sample_actions, fit.sample_weight
    # one code path with grids.inspect: the fit's sample of the fitted-on datasets, and their histograms
    grid.metrics = fit_metrics(grid, fit, names, sum(parts[n].steps for n in names if n in parts))
    grid.metrics["comparison"] = {
        name: {
            k: m[k]
            for k in ("token_entropy", "translation_token_entropy", "rotation_token_entropy", "mean_quantization_error")
        }
        for name, g in candidates.items()
        for m in [grid_metrics(g, sample, sample_w)]
    }
    write_json(ctx.grid_path, grid.to_json())
    ctx.grid_source = fitted_source(ctx)
    c = grid.metrics["comparison"]
    log(
        f"grids: wrote {ctx.grid_path} ({grid.distribution}); token entropy "
        + ", ".join(f"{k} {v['token_entropy']:.3f}" for k, v in c.items())
    )
    return grid


# How a difference between a reused grid's provenance and this run is named in the refusal.
SETTING_NAMES = {
    "mixture": "the mixture",
    "datasets": "the datasets fitted on (--grid-exclude or the mixture)",
    "excluded": "--grid-exclude",
    "weights": "the mixture's weights",
    "effective_weights": "the mixture's weights",
    "normalization": "--normalization",
    "statistics_sha256": "the statistics",
    "split": "--split",
    "max_episodes": "--max-episodes",
    "seed": "--seed",
    "tool_version": "the tool version",
}


def load(ctx: RunContext, stats: dict) -> ActionGrid:
    """The grid in OUT, for a run whose stages do not include 'grids': refused unless it was fitted
    with this run's statistics and settings (what `--stages export` promises)."""
    path = ctx.grid_path
    try:
        doc = read_json(path)
    except (OSError, ValueError):
        raise RunError(f"{path} is missing: run the 'grids' stage first") from None
    try:
        grid = ActionGrid.from_json(doc, path)
    except GridFileError as e:
        raise RunError(str(e)) from None
    fitted_on = grid.provenance.get("statistics_sha256")
    if fitted_on and fitted_on != sha256_of(stats):
        raise RunError(f"{path} was fitted on other statistics than this run's: run the 'grids' stage")
    ours = grid_provenance(ctx, stats)
    for key, value in ours.items():
        if key in grid.provenance and grid.provenance[key] != value:
            raise RunError(
                f"{path} was fitted with other settings than this run's ({SETTING_NAMES[key]}: "
                f"{grid.provenance[key]!r}, this run {value!r}): run the 'grids' stage too"
            )
    if grid.distribution != ctx.options.grid_fit:
        raise RunError(
            f"{path} is a {grid.distribution} grid, this run asks --grid-fit {ctx.options.grid_fit}: "
            "run the 'grids' stage too"
        )
    ctx.grid_source = fitted_source(ctx)
    return grid


def given(ctx: RunContext) -> ActionGrid:
    """--grid FILE: the grid to tokenize with, validated, copied to OUT/grids/<mixture>.json and
    recorded in the manifest (path, sha256, what made it); no grid is fitted."""
    path = files.absolute(ctx.options.grid)
    try:
        grid = ActionGrid.load(path)
    except GridFileError as e:
        raise RunError(f"--grid: {e}") from None
    except (OSError, ValueError) as e:
        raise RunError(f"--grid '{ctx.options.grid}': cannot read ({getattr(e, 'strerror', None) or e})") from None
    p = grid.provenance or {}
    if "base_grid" in p:
        made_by = f"grids.rediscretize ({p.get('fit', '?')} fit on {p.get('steps', '?')} steps)"
    elif "mixture" in p:
        made_by = f"the grids stage of mixture '{p['mixture']}'"
    else:
        made_by = "unknown"
    ctx.grid_source = {"kind": "given", "path": path, "sha256": files.sha256_file(path), "made_by": made_by}
    write_json(ctx.grid_path, grid.to_json())
    log(f"grids: skipped, tokenizing with the given grid {path} (made by {made_by})")
    return grid
