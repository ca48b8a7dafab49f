"""Small multiples of histograms as SVG, for the report's many per-dataset panels.

A page with dozens of datasets has hundreds of small histograms; matplotlib takes a second or more
per figure of that many axes, SVG text takes milliseconds and stays sharp at any zoom. Each panel:
a frame, the histogram as one path, vertical marker lines, ticks at matplotlib's "nice" positions,
a title and an axis label; the y axis is the share of steps, linear or log (a spike at zero).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

import numpy as np

FONT = "-apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif"


@dataclass
class Marker:
    x: float
    color: str
    dash: str = ""  # SVG stroke-dasharray, "" = solid
    label: str = ""
    behind: bool = False  # drawn under the histogram (e.g. many bin edges), else over it
    width: float = 1.1


@dataclass
class Panel:
    title: str
    xlabel: str
    edges: np.ndarray  # bin edges, len(heights) + 1
    heights: np.ndarray  # share of steps per bin
    color: str = "#4a7fb5"
    markers: list[Marker] = field(default_factory=list)
    log: bool = False


def _esc(s) -> str:
    return html.escape(str(s), quote=True)


def nice_ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    from matplotlib.ticker import MaxNLocator

    ticks = MaxNLocator(n).tick_values(lo, hi)
    span = hi - lo
    return [float(t) for t in ticks if lo - 1e-9 * span <= t <= hi + 1e-9 * span]


def tick_label(t: float) -> str:
    if t == 0:
        return "0"
    a = abs(t)
    if a >= 1e4 or a < 1e-3:
        return f"{t:.0e}".replace("e-0", "e-").replace("e+0", "e")
    return f"{t:.4g}"


def pct_label(share: float) -> str:
    p = 100 * share
    return f"{p:.0f}%" if p >= 1 or p == 0 else f"{p:.1g}%"


def panel_svg(p: Panel, x0: float, y0: float, w: float, h: float) -> str:
    """One panel in a box at (x0, y0) of size w x h (frame inside with room for labels)."""
    left, right = 38, 8
    top, bottom = (18 if p.title else 6), (30 if p.xlabel else 16)
    fx, fy, fw, fh = x0 + left, y0 + top, w - left - right, h - top - bottom
    lo, hi = float(p.edges[0]), float(p.edges[-1])
    span = hi - lo if hi > lo else 1.0
    heights = np.asarray(p.heights, np.float64)
    out = []
    if p.title:
        out.append(f'<text x="{x0 + w / 2:.1f}" y="{y0 + 12:.1f}" font-size="11" text-anchor="middle" '
                   f'font-weight="600">{_esc(p.title)}</text>')  # fmt: skip
    out.append(
        f'<rect x="{fx:.1f}" y="{fy:.1f}" width="{fw:.1f}" height="{fh:.1f}" fill="#fff" stroke="#999" stroke-width="0.8"/>'
    )
    positive = heights[heights > 0]
    if not len(positive):
        out.append(
            f'<text x="{fx + fw / 2:.1f}" y="{fy + fh / 2:.1f}" font-size="10" text-anchor="middle" fill="#777">no steps</text>'
        )
        return "".join(out)
    if p.log:
        ymin = 10 ** math.floor(math.log10(positive.min()))
        ymax = 10 ** math.ceil(math.log10(positive.max() * 1.05))

        def ypos(v):
            v = max(v, ymin)
            return fy + fh - (math.log10(v) - math.log10(ymin)) / (math.log10(ymax) - math.log10(ymin)) * fh

        yticks = [10.0**k for k in range(round(math.log10(ymin)), round(math.log10(ymax)) + 1)]
        if len(yticks) > 4:
            yticks = yticks[:: math.ceil(len(yticks) / 4)]
    else:
        ymax = positive.max() * 1.08

        def ypos(v):
            return fy + fh - v / ymax * fh

        yticks = nice_ticks(0, ymax, 3)

    def xpos(x):
        return fx + (x - lo) / span * fw

    base = fy + fh

    def marker(m: Marker) -> str:
        dash = f' stroke-dasharray="{m.dash}"' if m.dash else ""
        return (f'<line x1="{xpos(m.x):.1f}" x2="{xpos(m.x):.1f}" y1="{fy:.1f}" y2="{base:.1f}" '
                f'stroke="{m.color}" stroke-width="{m.width}"{dash}/>')  # fmt: skip

    out += [marker(m) for m in p.markers if m.behind and lo <= m.x <= hi]
    # the histogram as one stairs path, closed to the baseline
    d = [f"M{xpos(lo):.1f},{base:.1f}"]
    for i, v in enumerate(heights):
        y = ypos(v) if v > 0 else base
        d.append(f"L{xpos(p.edges[i]):.1f},{y:.1f}L{xpos(p.edges[i + 1]):.1f},{y:.1f}")
    d.append(f"L{xpos(hi):.1f},{base:.1f}Z")
    out.append(f'<path d="{"".join(d)}" fill="{p.color}" fill-opacity="0.8" stroke="{p.color}" stroke-width="0.6"/>')
    out += [marker(m) for m in p.markers if not m.behind and lo <= m.x <= hi]
    for t in nice_ticks(lo, hi, 4):
        x = xpos(t)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{base:.1f}" y2="{base + 3:.1f}" stroke="#666"/>')
        out.append(f'<text x="{x:.1f}" y="{base + 12:.1f}" font-size="9" text-anchor="middle">{tick_label(t)}</text>')
    for t in yticks:
        y = ypos(t)
        if fy - 0.5 <= y <= base + 0.5:
            out.append(f'<line x1="{fx - 3:.1f}" x2="{fx:.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="#666"/>')
            out.append(f'<text x="{fx - 5:.1f}" y="{y + 3:.1f}" font-size="9" text-anchor="end">{pct_label(t)}</text>')
    if p.log:
        out.append(
            f'<text x="{fx + fw - 3:.1f}" y="{fy + 10:.1f}" font-size="8" text-anchor="end" fill="#777">log</text>'
        )
    if p.xlabel:
        out.append(
            f'<text x="{fx + fw / 2:.1f}" y="{base + 25:.1f}" font-size="10" text-anchor="middle">'
            f"{_esc(p.xlabel)}</text>"
        )
    return "".join(out)


def panels_svg(rows: list[list[Panel | None]], panel_w: float = 160, panel_h: float | list[float] = 112,
               row_labels: list[str] | None = None, legend: list[Marker] | None = None,
               ylabel: str = "share of steps") -> str:  # fmt: skip
    """A grid of panels as one SVG document (panel_h: one height, or one per row); row_labels on the
    left, a legend of markers below."""
    heights = list(panel_h) if isinstance(panel_h, list) else [panel_h] * len(rows)
    tops = [sum(heights[:r]) for r in range(len(rows))]
    label_w = 150 if row_labels else 0
    ncols = max(len(r) for r in rows)
    legend_h = 22 if legend else 0
    width = label_w + 14 + ncols * panel_w
    height = sum(heights) + legend_h
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="{FONT}" fill="#1d232b">']  # fmt: skip
    out.append(f'<rect width="{width:.0f}" height="{height:.0f}" fill="#fff"/>')
    out.append(f'<text transform="translate(10,{sum(heights) / 2:.0f}) rotate(-90)" font-size="10" '
               f'text-anchor="middle" fill="#555">{_esc(ylabel)}</text>')  # fmt: skip
    for r, row in enumerate(rows):
        y0, panel_h = tops[r], heights[r]
        if row_labels:
            for k, part in enumerate(row_labels[r].split("\n")):
                out.append(f'<text x="{label_w + 6:.0f}" y="{y0 + panel_h / 2 + 12 * k:.0f}" font-size="11" '
                           f'text-anchor="end">{_esc(part)}</text>')  # fmt: skip
        for c, p in enumerate(row):
            if p is not None:
                out.append(panel_svg(p, label_w + 14 + c * panel_w, y0, panel_w, panel_h))
    if legend:
        x, y = label_w + 60, height - 7
        for m in legend:
            dash = f' stroke-dasharray="{m.dash}"' if m.dash else ""
            out.append(
                f'<line x1="{x}" x2="{x + 22}" y1="{y - 4}" y2="{y - 4}" stroke="{m.color}" stroke-width="1.5"{dash}/>'
            )
            out.append(f'<text x="{x + 27}" y="{y}" font-size="11">{_esc(m.label)}</text>')
            x += 40 + 7 * len(m.label)
    out.append("</svg>")
    return "".join(out)
