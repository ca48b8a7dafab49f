"""Plots of a grid over data, shared by `grids.inspect` (PNG files) and the run's report.html.

Every plot names its axes with units, has a legend for what is drawn (the data, the fitted
Gaussian, the bin edges, the uniform share), bin indices as integers, and a log scale where one
bin would flatten the rest (a rotation's spike at zero). Figures are built with matplotlib's
object API (no pyplot state) and saved without a timestamp, so the same data gives the same bytes.
"""

from __future__ import annotations

import io

import numpy as np

from grids.grid import RANGES, ROTATION, TRANSLATION, VARIABLES, ActionGrid

# variable -> (title, axis label with unit)
DESCRIPTIONS = {
    "x": ("x: translation, Cartesian (marginal, not binned)", "x (normalized units)"),
    "y": ("y: translation, Cartesian (marginal, not binned)", "y (normalized units)"),
    "z": ("z: translation, Cartesian (marginal, not binned)", "z (normalized units)"),
    "theta": ("theta: polar angle of the translation from +z", "theta (rad)"),
    "phi": ("phi: azimuth of the translation", "phi (rad)"),
    "r": ("r: length of the translation", "r (normalized units)"),
    "roll": ("roll: rotation delta", "roll (normalized units)"),
    "pitch": ("pitch: rotation delta", "pitch (normalized units)"),
    "yaw": ("yaw: rotation delta", "yaw (normalized units)"),
}
DATA_COLORS = ("0.62", "tab:orange", "tab:purple", "tab:brown")
EDGE_COLOR = "tab:red"
GAUSS_COLOR = "tab:blue"


def new_figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def png_bytes(fig, dpi: int = 80) -> bytes:
    """The figure as PNG bytes, without the metadata that would differ between runs."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def spiky(values) -> bool:
    """One bin towers over the rest (e.g. rotation deltas at exactly zero): plot on a log scale."""
    v = np.asarray(values, np.float64)
    nz = v[v > 0]
    return len(nz) > 3 and nz.max() > 10 * np.median(nz)


def integer_ticks(ax, axis: str = "x") -> None:
    from matplotlib.ticker import MaxNLocator

    (ax.xaxis if axis == "x" else ax.yaxis).set_major_locator(MaxNLocator(integer=True, nbins=8))


def share_density(shares, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Shares of equal bins over [lo, hi] -> (edges, density) so that the density integrates to 1."""
    s = np.asarray(shares, np.float64)
    edges = np.linspace(lo, hi, len(s) + 1)
    total = s.sum()
    return edges, (s / total / np.diff(edges)) if total > 0 else s


def draw_variable(ax, grid: ActionGrid, v: str, data: list[tuple[str, list]], compact: bool = False) -> None:
    """One variable: the data's histograms (label, shares on equal bins over RANGES[v]), the fitted
    Gaussian (truncated to the range, as the bins are cut), the bin edges and their indices."""
    from scipy.stats import norm

    lo, hi = RANGES[v]
    densities = []
    for i, (label, shares) in enumerate(data):
        edges, d = share_density(shares, lo, hi)
        densities.append(d)
        if i == 0:
            ax.stairs(d, edges, fill=True, color=DATA_COLORS[0], alpha=0.8, label=label)
        else:
            ax.stairs(d, edges, color=DATA_COLORS[i % len(DATA_COLORS)], lw=1.2, label=label)
    gs = grid.gs_params.get(v)
    if gs and gs["sigma"] > 0:
        x = np.linspace(lo, hi, 400)
        mass = norm.cdf(hi, gs["mu"], gs["sigma"]) - norm.cdf(lo, gs["mu"], gs["sigma"])
        pdf = norm.pdf(x, gs["mu"], gs["sigma"]) / max(mass, 1e-300)
        label = "fitted Gaussian N(mu, sigma)" if compact else f"fitted Gaussian N({gs['mu']:.3f}, {gs['sigma']:.3f})"
        ax.plot(x, pdf, color=GAUSS_COLOR, lw=1.3, label=label)
    if v in grid.edges:
        e = np.asarray(grid.edges[v])
        ax.vlines(e[1:-1], 0, 1, transform=ax.get_xaxis_transform(), color=EDGE_COLOR, lw=0.6, alpha=0.75,
                  label="bin edges" if compact else f"bin edges ({grid.counts[v]} bins)")  # fmt: skip
        centres = (e[:-1] + e[1:]) / 2
        step = max(1, int(np.ceil(len(centres) / (8 if compact else 16))))
        top = ax.secondary_xaxis("top")
        top.set_xticks(centres[::step], labels=[str(i) for i in range(0, len(centres), step)])
        top.tick_params(labelsize=6, length=2, pad=1)
        if not compact:
            top.set_xlabel("bin index", fontsize=7)
    if any(spiky(d) for d in densities):
        ax.set_yscale("log")
        positive = np.concatenate([d[d > 0] for d in densities])
        ax.set_ylim(max(positive.min(), positive.max() * 1e-5) / 2, positive.max() * 3)
        ax.set_ylabel("density (log scale)", fontsize=8)
    else:
        ax.set_ylabel("density", fontsize=8)
    ax.set_xlim(lo, hi)
    title, xlabel = DESCRIPTIONS[v]
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_title(title, fontsize=9, pad=14 if v in grid.edges else 4)
    ax.tick_params(labelsize=7)
    if not compact:
        ax.legend(loc="upper right", fontsize=7, framealpha=0.85)
        return
    text = [f"N({gs['mu']:.3f}, {gs['sigma']:.3f})"] if gs else []
    text += [f"{grid.counts[v]} bins"] if v in grid.edges else []
    if text:
        ax.text(0.02, 0.97, "\n".join(text), transform=ax.transAxes, va="top", fontsize=7,
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "0.8", "pad": 2})  # fmt: skip


def variable_figure(grid: ActionGrid, v: str, data: list[tuple[str, list]]):
    fig = new_figure(7.5, 3.6)
    ax = fig.add_subplot()
    draw_variable(ax, grid, v, data)
    fig.tight_layout()
    return fig


def grid_overview_figure(grid: ActionGrid, data: dict[str, list[tuple[str, list]]]):
    """3 x 3: x, y, z (the translation's Cartesian marginals); theta, phi, r (its binned spherical
    coordinates); roll, pitch, yaw. data: variable -> [(label, shares)]."""
    fig = new_figure(13.5, 10.5)
    axes = fig.subplots(3, 3)
    for ax, v in zip(axes.ravel(), VARIABLES):
        draw_variable(ax, grid, v, data.get(v, []), compact=True)
    handles, labels = axes[1, 0].get_legend_handles_labels()  # theta: data, Gaussian and edges
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.035, 1, 1), h_pad=1.2)
    return fig


def occupancy_figure(grid: ActionGrid, sets: list[tuple[str, dict]]):
    """Bin occupancy per binned variable: the share of (weighted) steps in each bin, against the
    uniform share 1/n an equal-probability grid aims at. sets: [(label, metrics)], the first as bars;
    a set with the same occupancy as an earlier one is drawn once (its label joined to it)."""
    unique: list[tuple[str, dict]] = []
    for label, metrics in sets:
        same = [i for i, (_, m) in enumerate(unique) if m["variables"] == metrics["variables"]]
        if same:
            unique[same[0]] = (f"{unique[same[0]][0]} = {label}", unique[same[0]][1])
        else:
            unique.append((label, metrics))
    fig = new_figure(13.5, 6.6)
    axes = fig.subplots(2, 3)
    for ax, v in zip(axes.ravel(), (*TRANSLATION, *ROTATION)):
        n = grid.counts[v]
        idx = np.arange(n)
        entropies = []
        for i, (label, metrics) in enumerate(unique):
            m = metrics["variables"][v]
            occ = np.asarray(m["occupancy"], np.float64)
            if i == 0:
                ax.bar(idx, occ, width=0.85, color="tab:green", alpha=0.85, label=label)
            else:
                ax.step(idx, occ, where="mid", color=DATA_COLORS[i % len(DATA_COLORS)], lw=1.4, label=label)
            entropies.append(f"{m['entropy']:.3f}")
        ax.axhline(1 / n, color="k", lw=0.9, ls="--", label="uniform share 1/n (every bin used equally)")
        ax.set_xlim(-0.6, n - 0.4)
        integer_ticks(ax)
        ax.set_xlabel(f"{v} bin index", fontsize=8)
        ax.set_ylabel("share of steps", fontsize=8)
        ax.set_title(f"{v}: {n} bins, entropy {' / '.join(entropies)}", fontsize=9)
        ax.tick_params(labelsize=7)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def dataset_panels_figure(grid: ActionGrid, per_dataset: dict[str, dict], notes: dict[str, str] | None = None,
                          max_rows: int = 30, bins: int = 32):  # fmt: skip
    """Small multiples: one row per dataset (its normalized actions' histograms, on `bins` bins), one
    column per binned variable, with the grid's bin edges; per_dataset: name -> coarse histograms
    (grids.metrics); notes: name -> a word beside its name (e.g. "not in the fit")."""
    names = list(per_dataset)[:max_rows]
    cols = (*TRANSLATION, *ROTATION)
    fig = new_figure(13.5, 1.0 + 0.85 * len(names))
    axes = np.atleast_2d(fig.subplots(len(names), len(cols), squeeze=False))
    for r, name in enumerate(names):
        hist = per_dataset[name]
        for c, v in enumerate(cols):
            ax = axes[r, c]
            lo, hi = RANGES[v]
            shares = np.asarray(hist["shares"][v], np.float64)
            shares = shares.reshape(bins, -1).sum(axis=1) if len(shares) % bins == 0 else shares
            edges, d = share_density(shares, lo, hi)
            ax.stairs(d, edges, fill=True, color=DATA_COLORS[0])
            ax.vlines(np.asarray(grid.edges[v])[1:-1], 0, 1, transform=ax.get_xaxis_transform(), color=EDGE_COLOR,
                      lw=0.4, alpha=0.6)  # fmt: skip
            if spiky(d):
                ax.set_yscale("log")
            ax.set_xlim(lo, hi)
            ax.set_yticks([])
            ax.minorticks_off()
            ax.tick_params(labelsize=6, length=2)
            if r == 0:
                ax.set_title(DESCRIPTIONS[v][1], fontsize=8)
            if r < len(names) - 1:
                ax.set_xticklabels([])
            if c == 0:
                label = short_name(name) + (f"\n({notes[name]})" if notes and name in notes else "")
                ax.set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    fig.tight_layout(h_pad=0.2, w_pad=0.4)
    return fig


def short_name(name: str, width: int = 26) -> str:
    name = name.replace("_converted_externally_to_rlds", "")
    return name if len(name) <= width else name[: width - 1] + "…"
