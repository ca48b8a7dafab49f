"""python -m grids.inspect GRID.json [--data OUT|actions.npy] [--out DIR]

A terminal summary of a grid (per variable: mu, sigma, bins, edges, occupancy, entropy) and
PNG plots: per variable, the data's histogram with the fitted Gaussian and the bin edges over
it (without --data: the Gaussian and the edges alone); with data, a token occupancy chart.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from grids.grid import RANGES, ROTATION, TRANSLATION, VARIABLES, ActionGrid, GridFileError


def summary(grid: ActionGrid, metrics: dict | None) -> str:
    lines = [
        f"grid: {grid.distribution}, {grid.total_tokens} tokens "
        f"(translation {grid.translation_tokens}, rotation {grid.rotation_tokens}, gripper {grid.counts['gripper']})"
    ]
    lines.append(
        f"{'variable':8s} {'mu':>9s} {'sigma':>8s} {'bins':>4s}  {'occ min':>8s} {'occ max':>8s} {'entropy':>7s}  edges"
    )
    for v in VARIABLES:
        gs = grid.gs_params.get(v, {})
        mu = f"{gs['mu']:9.4f}" if gs else f"{'-':>9s}"
        sigma = f"{gs['sigma']:8.4f}" if gs else f"{'-':>8s}"
        if v in grid.edges:
            e = grid.edges[v]
            edges = " ".join(f"{x:.3f}" for x in (e if len(e) <= 9 else [*e[:4], np.nan, *e[-4:]])).replace(
                "nan", "..."
            )
            m = (metrics or {}).get("variables", {}).get(v)
            occ = (
                f"{m['occupancy_min']:8.4f} {m['occupancy_max']:8.4f} {m['entropy']:7.3f}"
                if m
                else f"{'-':>8s} {'-':>8s} {'-':>7s}"
            )
            lines.append(f"{v:8s} {mu} {sigma} {grid.counts[v]:4d}  {occ}  {edges}")
        else:
            lines.append(f"{v:8s} {mu} {sigma} {'-':>4s}")
    if metrics:
        lines.append(
            f"token entropy {metrics['token_entropy']:.4f} (translation {metrics['translation_token_entropy']:.4f}, "
            f"rotation {metrics['rotation_token_entropy']:.4f}); mean quantization error "
            f"{metrics['mean_quantization_error']:.4f} ({metrics['quantization_error_vs_uniform']:.3f} x uniform grid's)"
        )
    return "\n".join(lines)


def plot(grid: ActionGrid, out_dir: str, values: dict | None, weights, metrics: dict | None) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    os.makedirs(out_dir, exist_ok=True)
    written = []
    for v in VARIABLES:
        lo, hi = RANGES[v]
        fig, ax = plt.subplots(figsize=(7, 3.5))
        if values is not None:
            ax.hist(values[v], bins=120, range=(lo, hi), weights=weights, density=True, color="0.75", label="data")
        gs = grid.gs_params.get(v)
        if gs:
            x = np.linspace(lo, hi, 400)
            ax.plot(
                x, norm.pdf(x, gs["mu"], gs["sigma"]), color="tab:blue", label=f"N({gs['mu']:.3f}, {gs['sigma']:.3f})"
            )
        for e in grid.edges.get(v, []):
            ax.axvline(e, color="tab:red", lw=0.6, alpha=0.7)
        ax.set_xlim(lo, hi)
        ax.set_title(f"{v}: {grid.counts.get(v, 0) or 'no'} bins ({grid.distribution})")
        ax.legend(loc="upper right", fontsize=8)
        path = os.path.join(out_dir, f"{v}.png")
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    if metrics:
        fig, axes = plt.subplots(2, 3, figsize=(11, 5))
        for ax, v in zip(axes.ravel(), (*TRANSLATION, *ROTATION)):
            occ = metrics["variables"][v]["occupancy"]
            ax.bar(range(len(occ)), occ, color="tab:green")
            ax.axhline(1 / len(occ), color="k", lw=0.8, ls="--")
            ax.set_title(f"{v} bins (entropy {metrics['variables'][v]['entropy']:.3f})", fontsize=9)
        fig.suptitle(f"bin occupancy; token entropy {metrics['token_entropy']:.3f}")
        fig.tight_layout()
        path = os.path.join(out_dir, "occupancy.png")
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m grids.inspect", description=__doc__.split("\n\n")[0])
    p.add_argument("grid", help="a grid file (OUT/grids/<mixture>.json)")
    p.add_argument("--data", help="an output directory (its shards) or a .npy of normalized actions [N, 7]")
    p.add_argument("--out", help="directory for the PNG plots (default: <grid>_plots)")
    args = p.parse_args(argv)
    try:
        grid = ActionGrid.load(args.grid)
    except GridFileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    values = weights = metrics = None
    if args.data:
        from grids.data import load_actions
        from grids.fit import variables
        from grids.metrics import grid_metrics

        try:
            actions, weights = load_actions(args.data)
        except (ValueError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        metrics = grid_metrics(grid, actions, weights)
        values = dict(zip(VARIABLES, variables(actions).T))
    print(summary(grid, metrics))
    out = args.out or os.path.splitext(args.grid)[0] + "_plots"
    written = plot(grid, out, values, weights, metrics)
    print(f"wrote {len(written)} plots to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
