"""python -m grids.inspect GRID.json|OUT [--data OUT|actions.npy] [--out DIR]

A terminal summary of a grid and PNG plots. Alone, it shows what the grid file stores: per
variable mu, sigma, bins, edges, and the metrics and data histograms of the data the grid was
fitted on (the run computes them on a sample of the fitted-on datasets, grids/metrics.py).
--data OUT adds the same metrics computed from an export's shards, by the same code, labelled
by which of its datasets they cover: the fitted-on ones (the stored numbers, recomputed) and all
of them (grid-excluded datasets included). --data actions.npy scores normalized actions [N, 7],
weighted equally.

Plots: per variable, the data's histogram with the fitted Gaussian and the bin edges over it;
the bin occupancy against the uniform share; with an export, one row per dataset.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from grids.grid import VARIABLES, ActionGrid, GridFileError
from manifests.extras import install_hint, missing
from storage import files

STORED = "grid file: fitted-on data"


def resolve_grid(path: str) -> str:
    """A grid file, or an export directory whose grid (its manifest's, else its only grids/*.json)."""
    if not files.isdir(path):
        return path
    manifest = files.join(path, "manifest.json")
    if files.exists(manifest):
        from shards.manifest import ManifestError, load_manifest

        try:
            return files.join(path, load_manifest(path)["grid"])
        except (ManifestError, KeyError):
            pass
    found = sorted(files.glob(files.join(path, "grids", "*.json")))
    if len(found) == 1:
        return found[0]
    what = f"{len(found)} grid files under grids/" if found else "no grid file"
    raise GridFileError(f"{path} is a directory with {what}: give the grid file, OUT/grids/<mixture>.json")


def metrics_row(label: str, m: dict) -> str:
    d = m.get("data", {})
    n = len(d["datasets"]) if "datasets" in d else "-"
    steps = f"{d['steps']:,}" if "steps" in d else "-"
    ratio = m.get("quantization_error_vs_uniform")
    ratio_text = f"{ratio:.3f}" if ratio is not None else "-"
    return (
        f"{label:44s} {n!s:>8s} {steps:>9s} {m['samples']:>8,d}  {m['token_entropy']:7.4f} "
        f"{m['translation_token_entropy']:7.4f} {m['rotation_token_entropy']:7.4f}  "
        f"{m['mean_quantization_error']:9.4f} {ratio_text:>9s}"
    )


def summary(grid: ActionGrid, sets: list[tuple[str, dict]], path: str = "") -> str:
    """The grid's variables with the first set's occupancy, then one metrics row per set."""
    lines = [
        f"grid: {path + ' ' if path else ''}({grid.distribution}), {grid.total_tokens} tokens "
        f"(translation {grid.translation_tokens}, rotation {grid.rotation_tokens}, gripper {grid.counts['gripper']})"
    ]
    prov = grid.provenance
    if prov.get("datasets"):
        excl = prov.get("excluded") or []
        lines.append(
            f"fitted on {len(prov['datasets'])} dataset(s) of mixture '{prov.get('mixture', '?')}'"
            + (f" ({len(excl)} excluded: {', '.join(excl)})" if excl else "")
            + ", weighted as the trainer samples them"
        )
    first = sets[0][1] if sets else None
    lines.append(
        f"{'variable':8s} {'mu':>9s} {'sigma':>8s} {'bins':>4s}  {'occ min':>8s} {'occ max':>8s} {'entropy':>7s}  edges"
    )
    for v in VARIABLES:
        gs = grid.gs_params.get(v, {})
        mu = f"{gs['mu']:9.4f}" if gs else f"{'-':>9s}"
        sigma = f"{gs['sigma']:8.4f}" if gs else f"{'-':>8s}"
        if v in grid.edges:
            e = grid.edges[v]
            shown = e if len(e) <= 9 else [*e[:4], np.nan, *e[-4:]]
            edges = " ".join(f"{x:.3f}" for x in shown).replace("nan", "...")
            m = (first or {}).get("variables", {}).get(v)
            occ = (
                f"{m['occupancy_min']:8.4f} {m['occupancy_max']:8.4f} {m['entropy']:7.3f}"
                if m
                else f"{'-':>8s} {'-':>8s} {'-':>7s}"
            )
            lines.append(f"{v:8s} {mu} {sigma} {grid.counts[v]:4d}  {occ}  {edges}")
        else:
            lines.append(f"{v:8s} {mu} {sigma} {'-':>4s}  (Cartesian marginal: translation is binned as theta/phi/r)")
    if sets:
        lines.append(f"(occupancy and entropy above: {sets[0][0]})")
        lines.append("")
        lines.append(
            f"{'metrics on':44s} {'datasets':>8s} {'steps':>9s} {'sample':>8s}  {'entropy':>7s} "
            f"{'transl.':>7s} {'rot.':>7s}  {'quant err':>9s} {'x uniform':>9s}"
        )
        lines += [metrics_row(label, m) for label, m in sets]
        lines.append(
            "entropy: token entropy (transl., rot.: of the translation and rotation tokens), normalized, 1.0 = every "
            "token equally used; quant err: mean |decoded - action| over the 6 movement dimensions; x uniform: that "
            "error / a uniform grid's with the same bin counts"
        )
    else:
        lines.append("the grid file stores no metrics (not written by this pipeline): give --data to measure them")
    return "\n".join(lines)


def plot(grid: ActionGrid, out_dir: str, histograms: list[tuple[str, dict]], sets: list[tuple[str, dict]],
         per_dataset: dict | None = None) -> list[str]:  # fmt: skip
    """PNGs: <variable>.png for the 9 variables, occupancy.png (when there are metrics), datasets.png
    (per-dataset panels, with an export). histograms: [(label, coarse histograms)]."""
    from grids.plots import dataset_panels_figure, occupancy_figure, png_bytes, variable_figure

    os.makedirs(out_dir, exist_ok=True)
    written = []

    def save(fig, name):
        path = os.path.join(out_dir, name)
        with open(path, "wb") as f:
            f.write(png_bytes(fig, dpi=90))
        written.append(path)

    for v in VARIABLES:
        data = [(label, h["shares"][v]) for label, h in histograms if v in h["shares"]]
        save(variable_figure(grid, v, data), f"{v}.png")
    if sets:
        save(occupancy_figure(grid, sets), "occupancy.png")
    if per_dataset:
        fitted = set(grid.provenance.get("datasets", []))
        notes = {n: "not in the grid fit" for n in per_dataset if fitted and n not in fitted}
        save(dataset_panels_figure(grid, per_dataset, notes), "datasets.png")
    return written


def export_sets(grid: ActionGrid, out: str) -> tuple[list, list, dict]:
    """(metrics sets, histograms, per-dataset histograms) of an export's shards: its fitted-on datasets
    (when it has them all) and all its datasets, by the code the run scores the grid with."""
    from tqdm import tqdm

    from grids.data import export_fit, read_manifest
    from grids.metrics import coarse_histograms, fit_metrics

    manifest = read_manifest(out)
    names = list(manifest["datasets"])
    fitted = [n for n in grid.provenance.get("datasets", []) if n in manifest["datasets"]]
    rows = sum(d["num_transitions"] for d in manifest["datasets"].values())
    bar = tqdm(total=rows, unit="steps", desc=f"reading {out}", disable=not sys.stderr.isatty(), leave=False)
    sets, hists = [], []
    try:
        every = export_fit(out, names, on_shard=lambda _, n: bar.update(n))
    finally:
        bar.close()
    if fitted and len(fitted) == len(grid.provenance["datasets"]) and len(fitted) < len(names):
        weights = grid.provenance.get("effective_weights") or None
        sub = export_fit(out, fitted, weights, read=every.parts)  # no shard read twice
        sets.append((f"export: fitted-on datasets ({len(fitted)})", fit_metrics(grid, sub.fit, fitted, sub.steps)))
    label = f"export: all datasets ({len(names)})" if fitted and len(fitted) < len(names) else "export: its datasets"
    if fitted and len(fitted) == len(names):
        label = f"export: all datasets ({len(names)}) = fitted-on"
    m = fit_metrics(grid, every.fit, names, every.steps)
    sets.append((label, m))
    hists.append((label, m["histograms"]))
    per_dataset = {n: coarse_histograms(dict(zip(VARIABLES, every.parts[n].histograms()))) for n in names}
    return sets, hists, per_dataset


EXAMPLES = """examples:
  python -m grids.inspect output/bridge/grids/bridge.json                     # the grid alone
  python -m grids.inspect output/bridge --data output/bridge --out bridge_plots   # an export: its grid and shards
  python -m grids.inspect my_robot_grid.json --data actions.npy               # on normalized actions [N, 7]
(output/bridge: the export of python -m pipeline.run --mixture bridge; its grid is OUT/grids/<mixture>.json)
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m grids.inspect",
        description=__doc__.split("\n\n")[0],
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("grid", help="a grid file (OUT/grids/<mixture>.json), or an output directory: its grid")
    p.add_argument("--data", help="an output directory (its shards) or a .npy of normalized actions [N, 7]")
    p.add_argument("--out", help="directory for the PNG plots (default: <grid>_plots beside the grid file)")
    args = p.parse_args(argv)
    if args.out and ("://" in args.out or (os.path.exists(args.out) and not os.path.isdir(args.out))):
        print(f"error: --out '{args.out}': the plots go into a local directory (this is a file or a URL)",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        path = resolve_grid(args.grid)
        grid = ActionGrid.load(path)
    except (GridFileError, OSError) as e:  # OSError: files.StorageError, e.g. a URL that does not answer
        print(f"error: {e}", file=sys.stderr)
        return 2
    stored = grid.metrics if grid.metrics and "token_entropy" in grid.metrics else None
    sets = [(STORED, stored)] if stored else []
    histograms = [(STORED, stored["histograms"])] if stored and "histograms" in stored else []
    per_dataset = None
    if args.data:
        try:
            if args.data.endswith(".npy"):
                data_sets, data_hists = npy_sets(grid, args.data)
            else:
                data_sets, data_hists, per_dataset = export_sets(grid, args.data)
        except (ValueError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        sets += data_sets
        histograms += data_hists
    print(summary(grid, sets, path))
    if stored and "histograms" not in stored:
        print("(this grid file has no stored data histograms: written by an older version; give --data to plot data)")
    if missing("plots"):  # the worker install has no plotting
        print(f"plots not written: matplotlib is not installed ({install_hint('plots')})")
    else:
        stem = os.path.splitext(path.rsplit("/", 1)[-1] if files.is_url(path) else path)[0]
        out = args.out or stem + "_plots"  # a URL's grid: plots in the current directory
        written = plot(grid, out, histograms, sets, per_dataset)
        print(f"wrote {len(written)} plots to {out}")
    if not args.data and files.isdir(args.grid):
        print(f"(add --data {args.grid} for the metrics and histograms of the export's own shards)")
    return 0


def npy_sets(grid: ActionGrid, path: str) -> tuple[list, list]:
    from grids.data import load_actions
    from grids.fit import fine_histograms
    from grids.metrics import coarse_histograms, grid_metrics

    actions, weights = load_actions(path)
    m = grid_metrics(grid, actions, weights)
    m["data"] = {"datasets": [os.path.basename(path)], "steps": len(actions), "sample_steps": len(actions)}
    m["histograms"] = coarse_histograms(fine_histograms(actions, weights))
    label = f"{os.path.basename(path)} (weighted equally)"
    return [(label, m)], [(label, m["histograms"])]


if __name__ == "__main__":
    sys.exit(main())
