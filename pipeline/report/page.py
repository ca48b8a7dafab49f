"""report.html: the run as a dataset card a researcher opens in a browser and hands to a colleague.

One self-contained file: plots are PNGs and frames JPEGs inline as data: URIs, the style is inline,
nothing is fetched. Built from what the output directory holds (report.json, manifest.json,
dataset_statistics.json, the grid file, timings.json and the shards' small columns), so the run
and `python -m pipeline.report OUT` write the same page. Every part is optional but report.json:
a run that stopped before the export, or ran without depth, still gets its page.

Memory stays bounded by MAX_ROWS steps of one dataset: datasets are read one after the other, each
dataset's action histograms from the shards' `raw_action` and `action` columns of at most MAX_ROWS
steps, from shards spread evenly over the dataset (the page says when it sampled); frames come from
the first episodes of the first shard, read batch by batch. Numbers taken from report.json, manifest.json, dataset_statistics.json and timings.json
carry data-src/data-path attributes naming where they come from (the browser test checks them).
Everything but the timings section is the same for the same inputs: the section between the
TIMINGS_BEGIN and TIMINGS_END comments is the only part that differs between identical runs.
"""

from __future__ import annotations

import base64
import html
import io
import math
import sys
from dataclasses import dataclass, field

import numpy as np

from grids.grid import RANGES, VARIABLES, ActionGrid, GridFileError
from pipeline import __version__
from pipeline.report import HTML_FILE, TIMINGS_BEGIN, TIMINGS_END, TIMINGS_FILE, plural
from pipeline.report.svg import Marker, Panel, panels_svg
from shards.manifest import MANIFEST_FILE, REPORT_FILE, STATISTICS_FILE, shard_path
from storage import files
from storage.jsonio import read_json

MAX_ROWS = 200_000  # steps per dataset read for the action histograms
EPISODES_SHOWN = 3  # episodes per dataset in the frame strip
THUMB = 160  # largest side of a frame on the page, pixels
BINS = 60  # per action dimension
DIMS = ("x", "y", "z", "roll", "pitch", "yaw", "gripper")
RAW_LABELS = (
    "Δx (dataset's units)",
    "Δy (dataset's units)",
    "Δz (dataset's units)",
    "Δroll (rad)",
    "Δpitch (rad)",
    "Δyaw (rad)",
    "gripper (1 open, 0 closed)",
)


class ReportInputError(ValueError):
    """An output directory the report cannot be built from (one line, names the file)."""


# ------------------------------------------------------------------ inputs


@dataclass
class Inputs:
    out: str
    report: dict
    manifest: dict | None
    stats: dict | None
    grid: ActionGrid | None
    grid_path: str | None
    timings: dict | None
    notes: list[str] = field(default_factory=list)  # what could not be read, said on the page


def _optional_json(path: str, notes: list[str], what: str):
    if not files.exists(path):
        return None
    try:
        return read_json(path)
    except (OSError, ValueError) as e:
        notes.append(f"{what} ({path}) could not be read: {e}")
        return None


def load_inputs(out: str) -> Inputs:
    report_path = files.join(out, REPORT_FILE)
    if not files.exists(report_path):
        raise ReportInputError(f"{report_path}: not found (give a run's output directory)")
    try:
        report = read_json(report_path)
    except (OSError, ValueError) as e:
        raise ReportInputError(f"{report_path}: cannot read ({e})") from None
    notes: list[str] = []
    manifest = _optional_json(files.join(out, MANIFEST_FILE), notes, "the manifest")
    stats = _optional_json(files.join(out, STATISTICS_FILE), notes, "the statistics")
    timings = _optional_json(files.join(out, TIMINGS_FILE), notes, "the timings")
    grid_path = None
    if manifest and manifest.get("grid"):
        grid_path = files.join(out, manifest["grid"])
    else:
        found = sorted(files.glob(files.join(out, "grids", "*.json")))
        grid_path = found[0] if len(found) == 1 else None
    grid = None
    if grid_path and files.exists(grid_path):
        try:
            grid = ActionGrid.load(grid_path)
        except GridFileError as e:
            notes.append(str(e))
    return Inputs(out, report, manifest, stats, grid, grid_path, timings, notes)


# ------------------------------------------------------------------ reading the shards


@dataclass
class EpisodeFrames:
    episode_id: str
    instruction: str
    length: int
    frames: list[tuple[int, bytes, tuple[bytes, str] | None]]  # (step, JPEG thumbnail, (depth PNG, its range))


@dataclass
class DatasetData:
    raw: np.ndarray  # [N, 7] float32, the steps read
    norm: np.ndarray  # [N, 7]
    rows_total: int
    shards_read: int
    shards_total: int
    episodes: list[EpisodeFrames]


def spread(n_items: int, k: int) -> list[int]:
    """k indexes spread evenly over range(n_items), first and last included."""
    if k >= n_items:
        return list(range(n_items))
    return sorted({int(round(x)) for x in np.linspace(0, n_items - 1, k)})


def read_dataset(out: str, shards: list[dict], max_rows: int = MAX_ROWS) -> DatasetData:
    from shards.schema import open_ipc

    rows = [s["num_rows"] for s in shards]
    total = sum(rows)
    if total <= max_rows:
        chosen = list(range(len(shards)))
    else:
        chosen = spread(len(shards), max(1, math.ceil(len(shards) * max_rows / total)))
    raw, norm = [], []
    for i in chosen:
        table = open_ipc(shard_path(out, shards[i]), columns=["raw_action", "action"]).read_all()
        for name, dest in (("raw_action", raw), ("action", norm)):
            col = table.column(name).combine_chunks()
            dest.append(col.values.to_numpy(zero_copy_only=False).reshape(-1, 7))
    empty = np.zeros((0, 7), np.float32)
    episodes = read_frames(shard_path(out, shards[0])) if shards else []
    return DatasetData(
        np.concatenate(raw) if raw else empty,
        np.concatenate(norm) if norm else empty,
        total,
        len(chosen),
        len(shards),
        episodes,
    )


def read_frames(path: str, episodes: int = EPISODES_SHOWN) -> list[EpisodeFrames]:
    """The first, middle and last frame of the first episodes of a shard, batch by batch."""
    from shards.schema import open_ipc

    names = open_ipc(path).schema.names
    columns = ["episode_id", "step", "language_instruction", "image"] + (["depth"] if "depth" in names else [])
    reader = open_ipc(path, columns=columns)
    found: list[EpisodeFrames] = []
    current: dict | None = None
    for b in range(reader.num_record_batches):
        batch = reader.get_batch(b).to_pydict()
        for i, episode_id in enumerate(batch["episode_id"]):
            if current is None or current["id"] != episode_id:
                if current is not None:
                    found.append(_pick_frames(current))
                    if len(found) == episodes:
                        return found
                current = {"id": episode_id, "instruction": batch["language_instruction"][i], "steps": []}
            depth = batch["depth"][i] if "depth" in batch else None
            current["steps"].append((batch["step"][i], batch["image"][i], depth))
    if current is not None and len(found) < episodes:
        found.append(_pick_frames(current))
    return found


def _pick_frames(ep: dict) -> EpisodeFrames:
    steps = ep["steps"]
    picks = sorted({0, (len(steps) - 1) // 2, len(steps) - 1})
    frames = [(steps[i][0], thumbnail(steps[i][1]), depth_image(steps[i][2])) for i in picks]
    return EpisodeFrames(ep["id"], ep["instruction"] or "", len(steps), frames)


def thumbnail(jpeg: bytes) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(jpeg)) as im:
        if max(im.size) <= THUMB:
            return jpeg
        im = im.convert("RGB")
        im.thumbnail((THUMB, THUMB))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=85)
        return buf.getvalue()


def depth_image(png16: bytes | None) -> tuple[bytes, str] | None:
    """A stored depth frame (uint16 mm) as a colour PNG (near = bright, invalid = black) and its range."""
    if png16 is None:
        return None
    from matplotlib import colormaps
    from PIL import Image

    from depth.codec import decode_depth

    mm = decode_depth(png16).astype(np.float64)
    valid = mm > 0
    rgb = np.zeros((*mm.shape, 3), np.uint8)
    span = "no valid depth"
    if valid.any():
        span = f"{mm[valid].min() / 1000:.2f}–{mm[valid].max() / 1000:.2f} m"
        lo, hi = np.percentile(mm[valid], [2, 98])
        t = np.clip((mm - lo) / max(hi - lo, 1.0), 0, 1)
        rgb = (colormaps["magma"](1 - t)[..., :3] * 255).astype(np.uint8)
        rgb[~valid] = 0
    im = Image.fromarray(rgb)
    if max(im.size) > THUMB:
        im.thumbnail((THUMB, THUMB))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue(), span


# ------------------------------------------------------------------ plots


def raw_range(values: np.ndarray, action_stats: dict | None, dim: int) -> tuple[float, float]:
    """The axis of a raw dimension: q01..q99 with a margin, within min..max (an outlier of 1e30
    must not squeeze the distribution into one bin); the data's own range without statistics."""
    if dim == 6:
        lo, hi = 0.0, 1.0
        if len(values):
            lo, hi = min(lo, float(values.min())), max(hi, float(values.max()))
        return lo, hi
    if action_stats:
        q01, q99 = action_stats["q01"][dim], action_stats["q99"][dim]
        mn, mx = action_stats["min"][dim], action_stats["max"][dim]
    elif len(values):
        q01, q99 = np.quantile(values, [0.01, 0.99])
        mn, mx = float(values.min()), float(values.max())
    else:
        return -1.0, 1.0
    width = q99 - q01 if q99 > q01 else max(abs(q01), 1e-3)
    lo, hi = max(mn, q01 - 0.5 * width), min(mx, q99 + 0.5 * width)
    if not hi > lo:
        lo, hi = lo - 1e-3, hi + 1e-3
    return float(lo), float(hi)


def hist_panel(values: np.ndarray, lo: float, hi: float, title: str, xlabel: str, color: str,
               markers: list) -> Panel:  # fmt: skip
    """A histogram panel; values beyond [lo, hi] are counted in the end bins and said in the title."""
    from grids.plots import spiky

    edges = np.linspace(lo, hi, BINS + 1)
    if not len(values):
        return Panel(title, xlabel, edges, np.zeros(BINS), color, markers)
    beyond = float(((values < lo) | (values > hi)).mean())
    counts, _ = np.histogram(np.clip(values, lo, hi), bins=BINS, range=(lo, hi))
    share = counts / counts.sum()
    if beyond >= 0.0005:
        title += f" ({100 * beyond:.1f}% off axis)"
    return Panel(title, xlabel, edges, share, color, markers, log=spiky(share))


Q01 = Marker(0.0, "#c0392b", "5,3", "q01 (top); where q01 lands: −1 (bottom)")
Q99 = Marker(0.0, "#c0392b", "1.5,2.5", "q99 (top); where q99 lands: +1 (bottom)")


def actions_svg(raw: np.ndarray, norm: np.ndarray, action_stats: dict | None) -> str:
    """Row 1: each dimension as standardized (before normalization) with q01 and q99; row 2: the same
    steps normalized to [-1, 1] (the gripper is not normalized: the same values again)."""
    mask = (action_stats or {}).get("mask") or [True] * 6 + [False]
    top, bottom = [], []
    for d in range(7):
        lo, hi = raw_range(raw[:, d], action_stats, d)
        marks = []
        if action_stats and d < 6:
            q01, q99 = action_stats["q01"][d], action_stats["q99"][d]
            marks = [Marker(q01, Q01.color, Q01.dash), Marker(q99, Q99.color, Q99.dash)]
        top.append(hist_panel(raw[:, d], lo, hi, DIMS[d], RAW_LABELS[d], "#4a7fb5", marks))
        if mask[d]:
            flat = bool(action_stats) and action_stats["q01"][d] == action_stats["q99"][d]
            title = DIMS[d] + (" (q01 = q99: all 0)" if flat else "")
            marks = [Marker(-1.0, Q01.color, Q01.dash), Marker(1.0, Q99.color, Q99.dash)]
            xlabel = f"{DIMS[d]} (normalized units)"
            bottom.append(hist_panel(norm[:, d], -1.0, 1.0, title, xlabel, "#3f9b5a", marks))
        else:
            title = f"{DIMS[d]} (not normalized)"
            bottom.append(hist_panel(norm[:, d], lo, hi, title, RAW_LABELS[d], "#3f9b5a", []))
    labels = ["before\nnormalization", "after\nnormalization"]
    return panels_svg([top, bottom], panel_w=146, row_labels=labels, legend=[Q01, Q99])


def grid_panels_svg(grid: ActionGrid, per_dataset: dict[str, dict], notes: dict[str, str], bins: int = 32) -> str:
    """One row per dataset: its normalized actions in the grid's binned variables, the bin edges over them."""
    from grids.grid import ROTATION, TRANSLATION
    from grids.plots import DESCRIPTIONS, short_name, spiky

    cols = (*TRANSLATION, *ROTATION)
    rows, labels, heights = [], [], []
    for r, name in enumerate(per_dataset):
        row = []
        for v in cols:
            lo, hi = RANGES[v]
            shares = np.asarray(per_dataset[name]["shares"][v], np.float64)
            shares = shares.reshape(bins, -1).sum(axis=1) if len(shares) % bins == 0 else shares
            edges = np.linspace(lo, hi, len(shares) + 1)
            marks = [Marker(float(e), "#f2a0a0", behind=True, width=0.8) for e in np.asarray(grid.edges[v])[1:-1]]
            title = DESCRIPTIONS[v][1] if r == 0 else ""
            row.append(Panel(title, "", edges, shares, "#8a8f96", marks, log=spiky(shares)))
        rows.append(row)
        labels.append(short_name(name) + (f"\n({notes[name]})" if name in notes else ""))
        heights.append(84 if r == 0 else 72)
    legend = [Marker(0.0, "#f2a0a0", "", "the grid's bin edges")]
    return panels_svg(rows, panel_w=170, panel_h=heights, row_labels=labels, legend=legend)


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def figure_img(fig, alt: str, dpi: int = 72) -> str:
    from grids.plots import png_bytes

    return f'<img class="plot" alt="{esc(alt)}" src="{data_uri(png_bytes(fig, dpi), "image/png")}">'


def svg_img(svg: str, alt: str) -> str:
    return f'<img class="plot" alt="{esc(alt)}" src="{data_uri(svg.encode(), "image/svg+xml")}">'


# ------------------------------------------------------------------ html helpers


def esc(text) -> str:
    return html.escape(str(text), quote=True)


def fmt(value, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind.startswith("f"):
        return f"{value:.{int(kind[1:])}f}"
    if kind.startswith("g"):
        return f"{value:.{int(kind[1:])}g}"
    if kind == "s":
        return f"{value:.1f}"
    return esc(value)


def ptr(*parts) -> str:
    """A JSON pointer (RFC 6901, without the leading /) to a value: keys may hold '/' and '~'."""
    return "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def num(value, kind: str, src: str | None = None, path: tuple | None = None) -> str:
    """A number on the page; with src and path (the keys to it) it names the JSON value it shows,
    which the browser test compares with the file."""
    attrs = f' data-src="{esc(src)}" data-path="{esc(ptr(*path))}"' if src else ""
    return f'<span class="num"{attrs}>{fmt(value, kind)}</span>'


def table(headers: list[str], rows: list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def explain(text: str) -> str:
    return f'<p class="explain">{text}</p>'


# ------------------------------------------------------------------ sections


def header_section(inp: Inputs) -> str:
    m, r = inp.manifest or {}, inp.report
    mixture = (
        m.get("mixture")
        or (inp.grid.provenance.get("mixture") if inp.grid else None)
        or (inp.timings or {}).get("mixture")
        or "?"
    )
    datasets = r.get("datasets", {})
    episodes = sum(d["episodes_read"] for d in datasets.values())
    steps = sum(d["steps_read"] for d in datasets.values())
    facts = [
        ("datasets", num(len(datasets), "int")),
        ("episodes kept", num(episodes, "int")),
        ("steps kept", num(steps, "int")),
        ("episodes lost", num(r.get("episodes_lost", 0), "int", "report", ("episodes_lost",))),
    ]
    if m:
        facts += [
            ("split", esc(m.get("split", "?"))),
            ("image size", f"{num(m['image_size'], 'int', 'manifest', ('image_size',))} px"),
            ("normalization", esc(m.get("normalization", "?"))),
            ("seed", num(m.get("seed", 0), "int", "manifest", ("seed",))),
        ]
    cells = "".join(f'<div class="fact"><div class="k">{k}</div><div class="v">{v}</div></div>' for k, v in facts)
    banner = ""
    if m.get("synthetic"):
        banner = (
            '<p class="banner">Built from the built-in synthetic sample corpus: it exercises the '
            "pipeline; it is not training data.</p>"
        )
    stopped = (inp.timings or {}).get("stopped")
    if stopped:
        banner += f'<p class="banner">This run stopped before it finished: {esc(stopped)}</p>'
    elif not m:
        banner += (
            '<p class="banner">This run did not export (no manifest.json): the page shows what the '
            "stages that ran wrote.</p>"
        )
    return (
        f"<header><h1>Dataset card: {esc(mixture)}</h1>"
        f'<p class="sub">Written by spatial-action-pipeline {esc(m.get("tool_version", __version__))} into the '
        f'run\'s output directory, beside the files it describes.</p>{banner}<div class="facts">{cells}</div></header>'
    )


def datasets_section(inp: Inputs) -> str:
    r, m = inp.report["datasets"], inp.manifest or {}
    fitted = set(inp.grid.provenance.get("datasets", [])) if inp.grid else set()
    names = list(m.get("datasets") or r)
    names += [n for n in r if n not in names]
    rows = []
    for n in names:
        d = r.get(n, {})
        md = (m.get("datasets") or {}).get(n)
        problems = d.get("problems", {})
        why = "; ".join(f"{esc(k)} ×{v}" for k, v in problems.items()) or "—"
        row = [
            f'<a href="#ds-{esc(n)}">{esc(n)}</a>',
            num(m["weights"][n], "g4", "manifest", ("weights", n)) if m else "-",
            num(m["effective_weights"][n], "pct", "manifest", ("effective_weights", n)) if m else "-",
            num(d.get("episodes_read", 0), "int", "report", ("datasets", n, "episodes_read")),
            num(d.get("steps_read", 0), "int", "report", ("datasets", n, "steps_read")),
            num(d.get("episodes_lost", 0), "int", "report", ("datasets", n, "episodes_lost")),
            why,
            ("yes" if n in fitted else "excluded") if fitted else "-",
            num(len(md["shards"]), "int") if md else "-",
        ]
        rows.append(row)
    bars = ""
    if m:
        top = max(m["effective_weights"].values()) or 1
        bars = "".join(
            f'<div class="bar-row"><span class="bar-name">{esc(n)}</span>'
            f'<span class="bar" style="width:{60 * w / top:.2f}%"></span>'
            f'<span class="bar-val">{fmt(w, "pct")}</span></div>'
            for n, w in sorted(m["effective_weights"].items(), key=lambda x: -x[1])
        )
        bars = (
            "<h3>Effective weights</h3>"
            + explain(
                "The probability that a training step comes from each dataset: the mixture's weight "
                "times the dataset's number of steps, normalized (OpenVLA's and SpatialVLA's balancing)."
            )
            + f'<div class="bars">{bars}</div>'
        )
    return (
        '<section id="datasets"><h2>Datasets: read, kept, lost</h2>'
        + explain(
            "Per dataset: the mixture's weight, its effective sampling weight, the episodes and steps kept, "
            "the episodes lost and the problems met (a problem marked “(kept)” flagged an episode "
            "that was kept). “In grid fit”: whether its actions shaped the action grid."
        )
        + table(
            ["dataset", "weight", "effective", "episodes", "steps", "lost", "problems", "in grid fit", "shards"],
            rows,
            "wide",
        )
        + bars
        + "</section>"
    )


def problems_section(inp: Inputs) -> str:
    problems = inp.report.get("problems", [])
    notes = inp.report.get("notes", [])
    parts = ['<section id="problems"><h2>Problems and notes</h2>']
    if not problems and not notes:
        parts.append("<p>None: every episode of every dataset was read and kept.</p>")
    lost = [p for p in problems if p["episodes_lost"]]
    kept = [p for p in problems if not p["episodes_lost"]]
    if problems:
        lost_text = (
            f"{plural(len(lost), 'problem')} lost "
            f"{num(inp.report.get('episodes_lost', 0), 'int', 'report', ('episodes_lost',))} episode(s)"
            if lost
            else "No episode was lost"
        )
        kept_text = f"; {plural(len(kept), 'problem')} flagged an episode that was kept" if kept else ""
        parts.append(f"<p>{lost_text}{kept_text}.</p>")
        rows = [
            [
                esc(p["dataset"]),
                f"<code>{esc(p['file'])}</code>",
                esc(p["episode_id"] or "—"),
                esc(p["reason"]),
                num(p["episodes_lost"], "int", "report", ("problems", i, "episodes_lost")),
            ]  # fmt: skip
            for i, p in enumerate(problems)
        ]
        detail = table(["dataset", "file", "episode", "reason", "episodes lost"], rows, "wide small")
        parts.append(
            f"<details{' open' if len(problems) <= 12 else ''}><summary>All {plural(len(problems), 'problem')}"
            f"</summary>{detail}</details>"
        )
    if notes:
        parts.append("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    parts.append("</section>")
    return "".join(parts)


def grid_section(inp: Inputs, per_dataset_hists: dict) -> str:
    from grids.plots import grid_overview_figure, occupancy_figure

    grid = inp.grid
    if grid is None:
        return '<section id="grid"><h2>The action grid</h2><p>No grid: the grids stage did not run.</p></section>'
    prov, metrics = grid.provenance, grid.metrics or {}
    parts = ['<section id="grid"><h2>The action grid</h2>']
    fitted = prov.get("datasets", [])
    excluded = prov.get("excluded", [])
    rel = inp.grid_path[len(inp.out.rstrip("/")) + 1 :] if inp.grid_path.startswith(inp.out.rstrip("/")) else ""
    parts.append(
        explain(
            f"<code>{esc(rel or inp.grid_path)}</code>: {esc(grid.distribution)} edges, "
            f"{grid.total_tokens:,} action tokens (translation {grid.translation_tokens:,} = theta × phi × r bins, "
            f"rotation {grid.rotation_tokens:,} = roll × pitch × yaw bins, gripper {grid.counts['gripper']}). "
            f"Fitted on {plural(len(fitted), 'dataset')} weighted as the trainer samples them"
            + (f"; left out of the fit: {esc(', '.join(excluded))}" if excluded else "")
            + "."
        )
    )
    if "token_entropy" in metrics:
        data = metrics.get("data", {})
        parts.append("<h3>How well the grid fits</h3>")
        parts.append(
            explain(
                "Measured on the data the grid was fitted on"
                + (
                    f" ({plural(data['steps'], 'step')} of {plural(len(data['datasets']), 'dataset')}; "
                    f"a sample of {num(metrics['samples'], 'int')} steps picked by a hash of (episode, step), "
                    "each weighted as the trainer samples it)"
                    if data
                    else ""
                )
                + ". Token entropy is normalized: 1.0 means every token is used equally often. Quantization "
                "error is the mean |decoded − action| over the six movement dimensions (normalized units); "
                "“× uniform” compares it with a uniform grid of the same bin counts. "
                "<code>python -m grids.inspect</code> shows the same numbers (same code, same sample)."
            )
        )
        rows = []
        comparison = metrics.get("comparison") or {grid.distribution: metrics}
        for name, c in comparison.items():
            mark = name == grid.distribution
            base = ("metrics",) if mark else ("metrics", "comparison", name)
            rows.append(
                [
                    f"<b>{esc(name)}</b> (this grid)" if mark else esc(name),
                    num(c["token_entropy"], "f4", "grid", (*base, "token_entropy")),
                    num(c["translation_token_entropy"], "f4", "grid", (*base, "translation_token_entropy")),
                    num(c["rotation_token_entropy"], "f4", "grid", (*base, "rotation_token_entropy")),
                    num(c["mean_quantization_error"], "f4", "grid", (*base, "mean_quantization_error")),
                ]
            )
        parts.append(table(["edges", "token entropy", "translation", "rotation", "mean quantization error"], rows))
        ratio = metrics.get("quantization_error_vs_uniform")
        if ratio is not None:
            parts.append(
                f"<p>This grid's quantization error is "
                f"{num(ratio, 'f3', 'grid', ('metrics', 'quantization_error_vs_uniform'))} × the uniform grid's; "
                f"tokens used: translation {num(metrics['translation_tokens_used'], 'int')} of "
                f"{grid.translation_tokens:,}, rotation {num(metrics['rotation_tokens_used'], 'int')} of "
                f"{grid.rotation_tokens:,}.</p>"
            )
    overlay = {}
    stored = metrics.get("histograms")
    for v in VARIABLES:
        overlay[v] = []
        if stored:
            overlay[v].append((f"fitted-on data ({len(fitted)} datasets, grid file)", stored["shares"][v]))
        if per_dataset_hists.get("mixture"):
            overlay[v].append(per_dataset_hists["mixture"][v])
    parts.append("<h3>The grid's variables over the data</h3>")
    parts.append(
        explain(
            "Translation is binned in spherical coordinates (theta: angle from +z; phi: azimuth; r: length); "
            "x, y and z are shown as the Cartesian marginals they come from. Per variable: the data's "
            "histogram (density), the Gaussian fitted to it (truncated to the range, as the bins are), and "
            "the bin edges in red; the top axis numbers the bins. Equal-probability edges crowd where the "
            "data is dense. A log scale is used where one bin (e.g. exactly zero rotation) would flatten the rest."
        )
    )
    parts.append(figure_img(grid_overview_figure(grid, overlay), "grid variables over the data", dpi=90))
    if "variables" in metrics:
        parts.append("<h3>Token occupancy</h3>")
        parts.append(
            explain(
                "The share of (weighted) steps in each bin of each variable, against the uniform share 1/n "
                "that an equal-probability grid aims at; the entropy per variable is in each title."
            )
        )
        parts.append(figure_img(occupancy_figure(grid, [("fitted-on data (grid file)", metrics)]), "bin occupancy"))
    if per_dataset_hists.get("datasets"):
        notes = {n: "not in the grid fit" for n in per_dataset_hists["datasets"] if fitted and n not in fitted}
        parts.append("<h3>Per dataset</h3>")
        parts.append(
            explain(
                "Each dataset's normalized actions in the grid's variables (from the steps read for this "
                "page), with the grid's bin edges: which datasets sit where the bins are fine, and which "
                "the grid serves coarsely."
            )
        )
        parts.append(svg_img(grid_panels_svg(grid, per_dataset_hists["datasets"], notes), "per-dataset grid variables"))
    parts.append("</section>")
    return "".join(parts)


def depth_section(inp: Inputs) -> str:
    m = inp.manifest or {}
    depth = m.get("depth")
    skipped = [n for n in inp.report.get("notes", []) if n.startswith("depth skipped")]
    if depth:
        text = (
            f"Depth ran: model <code>{esc(depth.get('model', '?'))}</code>, stored as "
            f"{esc(depth.get('encoding', '?'))} ({esc(depth.get('dtype', '?'))} {esc(depth.get('units', '?'))}, "
            f"{esc(depth.get('invalid', 0))} = invalid); the frame strips below show it under each frame."
        )
    elif skipped:
        text = "Depth was asked for and skipped: " + esc("; ".join(skipped))
    elif m:
        text = "Depth did not run (<code>--no-depth</code>, or <code>--stages</code> without depth): no depth column."
    else:
        text = "No export: no depth."
    return f'<section id="depth"><h2>Depth</h2><p>{text}</p></section>'


def dataset_card(inp: Inputs, name: str, data: DatasetData | None) -> str:
    r = inp.report["datasets"].get(name, {})
    md = ((inp.manifest or {}).get("datasets") or {}).get(name)
    st = (inp.stats or {}).get(name)
    parts = [f'<section class="card" id="ds-{esc(name)}"><h3>{esc(name)}</h3>']
    rep = lambda key, kind="int": num(r.get(key, 0), kind, "report", ("datasets", name, key))  # noqa: E731
    facts = [
        f"{rep('episodes_read')} episodes",
        f"{rep('steps_read')} steps kept",
        f"{rep('episodes_lost')} episodes lost",
    ]
    if r.get("steps_not_sampled"):
        facts.append(f"{rep('steps_not_sampled')} still steps kept for action chunks, never sampled")
    if md:
        mb = sum(s["bytes"] for s in md["shards"]) / 1e6
        hz = num(md["control_hz"], "g4", "manifest", ("datasets", name, "control_hz"))
        facts.append(f"{plural(len(md['shards']), 'shard')} ({mb:,.1f} MB)")
        facts.append(f"control {hz} Hz")
        facts.append("wrist camera" if md.get("has_wrist_image") else "no wrist camera")
    parts.append(f'<p class="facts-line">{" · ".join(facts)}</p>')
    inputs = ((inp.manifest or {}).get("inputs") or {}).get(name)
    if inputs:
        parts.append(f'<p class="small">source: <code>{esc(inputs.get("path", "?"))}</code> '
                     f'(version {esc(inputs.get("version", "?"))})</p>')  # fmt: skip
    problems = r.get("problems") or {}
    if problems:
        parts.append(
            '<p class="small">problems: '
            + "; ".join(
                f"{esc(k)} ×{num(v, 'int', 'report', ('datasets', name, 'problems', k))}" for k, v in problems.items()
            )
            + "</p>"
        )
    if data is not None and data.episodes:
        parts.append("<h4>Sample frames</h4>")
        strip = []
        for ep in data.episodes:
            frames = "".join(
                f'<figure><img alt="step {s}" src="{data_uri(jpg, "image/jpeg")}">'
                + (f'<img alt="depth at step {s}" src="{data_uri(dep[0], "image/png")}">' if dep else "")
                + f"<figcaption>step {s}"
                + (f"<br>depth {dep[1]}" if dep else "")
                + "</figcaption></figure>"
                for s, jpg, dep in ep.frames
            )
            instruction = esc(ep.instruction) if ep.instruction else "<i>(no instruction)</i>"
            strip.append(
                f'<div class="episode"><div class="frames">{frames}</div>'
                f'<div class="instr">“{instruction}”</div>'
                f'<div class="small">{esc(ep.episode_id)} · {ep.length:,} steps</div></div>'
            )
        parts.append(f'<div class="strip">{"".join(strip)}</div>')
    if data is not None and len(data.raw):
        parts.append("<h4>Actions before and after normalization</h4>")
        if data.shards_read < data.shards_total:
            parts.append(
                explain(
                    f"From {data.shards_read} of {data.shards_total} shards ({len(data.raw):,} of "
                    f"{data.rows_total:,} steps), spread evenly over the dataset."
                )
            )
        parts.append(svg_img(actions_svg(data.raw, data.norm, st["action"] if st else None), f"{name} actions"))
        g = data.raw[:, 6]
        parts.append(
            f"<p>Gripper: {fmt(float((g >= 0.5).mean()), 'pct')} of the steps read are open (≥ 0.5), "
            f"{fmt(float((g < 0.5).mean()), 'pct')} closed; "
            f"{fmt(float(((g > 0.01) & (g < 0.99)).mean()), 'pct')} lie strictly between 0 and 1.</p>"
        )
    if st:
        a = st["action"]
        rows = []
        for key in ("q01", "q99", "mean", "std", "min", "max"):
            rows.append(
                [key] + [num(a[key][d], "g4", "statistics", (name, "action", key, d)) for d in range(len(a[key]))]
            )
        parts.append(
            "<details><summary>Action statistics (dataset_statistics.json)</summary>"
            + table(["", *DIMS], rows, "small")
            + "</details>"
        )
    parts.append("</section>")
    return "".join(parts)


def timings_section(inp: Inputs) -> str:
    t = inp.timings
    if not t:
        return f'{TIMINGS_BEGIN}<section id="timings"><h2>Timings</h2><p>No timings.json.</p></section>{TIMINGS_END}'
    r, m = inp.report["datasets"], inp.manifest or {}
    steps_all = sum(d["steps_read"] for d in r.values())
    fitted = inp.grid.provenance.get("datasets", []) if inp.grid else []
    steps_of = {
        "stats": steps_all,
        "grids": sum(r.get(n, {}).get("steps_read", 0) for n in fitted) or steps_all,
        "export": sum(s["num_rows"] for d in (m.get("datasets") or {}).values() for s in d["shards"]) or steps_all,
    }
    rows = []
    for i, s in enumerate(t.get("stages", [])):
        steps = steps_of.get(s["stage"].split(" ")[0])
        rate = f"{steps / s['seconds']:,.0f}" if steps and s["seconds"] > 0 else "-"
        rows.append([esc(s["stage"]), num(s["seconds"], "s", "timings", ("stages", i, "seconds")),
                     f"{steps:,}" if steps else "-", rate])  # fmt: skip
    return (
        f'{TIMINGS_BEGIN}<section id="timings"><h2>Timings and throughput</h2>'
        + explain(
            f"Wall time of each stage of the run that wrote this page (runner: {esc(t.get('runner', '?'))}); "
            "steps per second of wall time over the steps the stage handles. A stage whose inputs were "
            "unchanged reads its cache and takes almost no time. These numbers differ between identical runs: "
            "they live in timings.json, not in report.json."
        )
        + table(["stage", "seconds", "steps", "steps / s"], rows)
        + f"<p>Total: {num(t.get('total_seconds', 0), 's', 'timings', ('total_seconds',))} s.</p></section>"
        + TIMINGS_END
    )


# ------------------------------------------------------------------ page

CARDS_EXPLAINED = (
    "Each dataset as exported. <b>Sample frames</b>: the first, middle and last step of the first episodes "
    "of the first shard (the training image at the export size), with the episode's instruction; where depth "
    "ran, its depth map below each frame (bright = near, black = invalid). <b>Actions</b>: top, each dimension "
    "of the standardized action before normalization, with the dataset's q01 and q99; bottom, the same steps "
    "after <code>{mode}</code> normalization (bounds_q99: <code>clip(2 (x − q01) / (q99 − q01) − 1, −1, 1)</code>, "
    "so q01 lands on −1 and q99 on +1). Translation is in the dataset's own units (metres or a velocity "
    "scale, as recorded), rotation in radians; the gripper (1 = open, 0 = closed) is not normalized. Values "
    "beyond an axis are counted in its end bins (the title says how many); a log scale marks a spike "
    "(e.g. rotation deltas of exactly zero)."
)


STYLE = """
:root { --fg:#1d232b; --muted:#5b6673; --line:#dde2e8; --accent:#2563a8; --bg:#f6f7f9; }
* { box-sizing: border-box; }
body { margin:0; font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color:var(--fg); background:var(--bg); }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 60px; background:#fff; }
h1 { font-size: 28px; margin: 0 0 4px; } h2 { font-size: 21px; margin: 36px 0 8px;
  border-bottom: 2px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 17px; margin: 22px 0 6px; } h4 { font-size: 15px; margin: 16px 0 4px; }
.sub, .small, .explain { color: var(--muted); } .small { font-size: 13px; }
.explain { font-size: 14px; max-width: 900px; margin: 4px 0 10px; }
code { font-size: 13px; background: #f0f2f5; padding: 1px 4px; border-radius: 3px; word-break: break-all; }
.banner { background:#fff5db; border:1px solid #f0d58a; padding:8px 12px; border-radius:6px; }
.facts { display:flex; flex-wrap:wrap; gap:10px; margin-top:14px; }
.fact { border:1px solid var(--line); border-radius:8px; padding:8px 14px; min-width:120px; }
.fact .k { font-size:12px; color:var(--muted); text-transform:uppercase; letter-spacing:.04em; }
.fact .v { font-size:20px; font-weight:600; }
nav { margin: 16px 0 0; font-size: 14px; } nav a { margin-right: 14px; }
a { color: var(--accent); text-decoration: none; } a:hover { text-decoration: underline; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 14px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f0f2f5; font-weight: 600; } tbody tr:nth-child(even) { background: #fafbfc; }
table.wide { width: 100%; } table.small { font-size: 13px; }
td .num, .num { font-variant-numeric: tabular-nums; }
img.plot { width: 100%; height: auto; display: block; margin: 6px 0 14px; }
.bars { max-width: 900px; } .bar-row { display:flex; align-items:center; font-size:13px; height:20px; }
.bar-name { flex: 0 0 340px; overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
.bar { display:inline-block; height:12px; background: var(--accent); border-radius:2px; margin-right:8px; }
.bar-val { color: var(--muted); font-variant-numeric: tabular-nums; }
.card { border:1px solid var(--line); border-radius:10px; padding: 4px 18px 12px; margin: 18px 0; }
.facts-line { font-size: 14px; }
.strip { display:flex; flex-wrap:wrap; gap:18px; }
.episode { max-width: 520px; } .frames { display:flex; gap:6px; }
figure { margin:0; text-align:center; } figure img { display:block; width:120px; height:auto;
  border-radius:4px; margin-bottom:2px; image-rendering: auto; }
figcaption { font-size: 12px; color: var(--muted); }
.instr { font-size: 14px; margin-top: 4px; font-style: italic; }
details { margin: 8px 0; } summary { cursor: pointer; color: var(--accent); }
footer { margin-top: 40px; font-size: 13px; color: var(--muted); }
"""


def grid_histograms(norm: np.ndarray) -> dict:
    """A dataset's normalized actions in the grid's variables, on the stored histograms' bins."""
    from grids.fit import fine_histograms
    from grids.metrics import HIST_BINS, coarse_histograms

    return coarse_histograms(fine_histograms(norm), HIST_BINS)


def mixture_histograms(inp: Inputs, per: dict[str, dict]) -> dict:
    """The datasets' grid histograms, and the mixture's (effective weights) as one overlay."""
    out: dict = {"datasets": per}
    weights = (inp.manifest or {}).get("effective_weights") or {}
    if per and weights:
        mix = {}
        for var in VARIABLES:
            total = sum(weights.get(n, 0) * np.asarray(h["shares"][var]) for n, h in per.items())
            mix[var] = (f"export: all {len(per)} datasets (steps read for this page)", list(total))
        out["mixture"] = mix
    return out


def build_html(out: str) -> str:
    inp = load_inputs(out)
    m = inp.manifest or {}
    names = list(m.get("datasets") or inp.report["datasets"])
    names += [n for n in inp.report["datasets"] if n not in names]
    cards, per = [], {}
    for name in names:  # one dataset's steps in memory at a time: its card and grid histograms, then dropped
        md = (m.get("datasets") or {}).get(name)
        data = read_dataset(out, md["shards"]) if md else None
        cards.append(dataset_card(inp, name, data))
        if data is not None and len(data.norm):
            per[name] = grid_histograms(data.norm)
    hists = mixture_histograms(inp, per)
    nav = " ".join(
        f'<a href="#{a}">{t}</a>'
        for a, t in (
            ("datasets", "Datasets"),
            ("problems", "Problems"),
            ("grid", "Action grid"),
            ("depth", "Depth"),
            ("cards", "Per dataset"),
            ("timings", "Timings"),
        )  # fmt: skip
    )
    body = [
        header_section(inp),
        f"<nav>{nav}</nav>",
        datasets_section(inp),
        problems_section(inp),
        grid_section(inp, hists),
        depth_section(inp),
        '<section id="cards"><h2>Per dataset</h2>'
        + explain(CARDS_EXPLAINED.format(mode=esc(m.get("normalization", "bounds_q99"))))
        + "".join(cards)
        + "</section>",
        timings_section(inp),
    ]
    if inp.notes:
        body.append(
            "<section><h2>Not shown</h2><ul>" + "".join(f"<li>{esc(n)}</li>" for n in inp.notes) + "</ul></section>"
        )
    body.append(
        f"<footer>Written by spatial-action-pipeline {esc(__version__)}. Rebuild with "
        "<code>python -m pipeline.report OUT</code> (OUT: this page's directory). Numbers come from report.json, manifest.json, "
        "dataset_statistics.json, the grid file and timings.json beside this page.</footer>"
    )
    title = f"Dataset card: {m.get('mixture') or (inp.timings or {}).get('mixture') or 'run'}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )


def write_report(out: str) -> str:
    path = files.join(out, HTML_FILE)
    files.write_bytes(path, build_html(out).encode("utf-8"))
    return path


def refresh_html(out: str) -> None:
    """(Re)write OUT/report.html after a command changed OUT; a page that fails says so in one line
    and never fails the command (its data is written)."""
    try:
        write_report(out)
    except Exception as e:
        print(f"warning: {files.join(out, HTML_FILE)} not written ({type(e).__name__}: {e}); "
              f"rebuild it with: python -m pipeline.report {out}", file=sys.stderr)  # fmt: skip
