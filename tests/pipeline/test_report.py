"""report.html in a real browser, one set of grid metrics, and the run's own words about itself.

Tiny exports of the sample corpus (three datasets, one of them left out of the grid fit): with depth
(a tiny random ZoeDepth), a one-dataset export whose input lost an episode and whose depth was
skipped, and a run that stopped before the export. Each page is opened in headless Chromium
(Debian's `chromium`, driven by Playwright over the DevTools protocol): every image must decode,
nothing may be requested but the file itself, and every number that names its source (data-src,
data-path) must equal that JSON value.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from grids import inspect
from grids.data import export_fit
from grids.grid import ActionGrid
from grids.metrics import fit_metrics
from pipeline.report import TIMINGS_BEGIN, output_digests
from pipeline.run import main as run_main
from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # end-to-end runs of the job

DATASETS = ("bridge_orig", "kuka", "language_table")  # language_table: on the registry's grid-exclusion list
CHROMIUM = os.environ.get("SPATIAL_PIPELINE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from sources.sample import generate

    return generate(tmp_path_factory.mktemp("corpus") / "rlds", episodes=2, names=list(DATASETS), verbose=False)


@pytest.fixture(scope="module")
def tiny_zoedepth(tmp_path_factory):
    from bench.depth import build_random_zoedepth

    return build_random_zoedepth(tmp_path_factory.mktemp("zoedepth"), tiny=True)


def run(data, out, *extra):
    args = ["--datasets", "bridge_orig=1,kuka=1,language_table=0.5", "--data-dir", str(data), "--out", str(out),
            "--image-size", "32", *extra]  # fmt: skip
    assert run_main(args) == 0


@pytest.fixture(scope="module")
def with_depth(corpus, tiny_zoedepth, tmp_path_factory):
    out = tmp_path_factory.mktemp("with_depth") / "out"
    run(corpus, out, "--depth-model", str(tiny_zoedepth))
    return out


@pytest.fixture(scope="module")
def lost_and_skipped(corpus, tmp_path_factory):
    """One dataset (kuka) whose train file is cut after its first episode, depth asked for without weights."""
    root = tmp_path_factory.mktemp("damaged")
    shutil.copytree(corpus / "kuka", root / "rlds" / "kuka")
    shard = root / "rlds" / "kuka" / "0.1.0" / "kuka-train.tfrecord-00000-of-00001"
    raw = shard.read_bytes()
    shard.write_bytes(raw[: 16 + int.from_bytes(raw[:8], "little")])  # the first record only
    (root / "no_weights").mkdir()
    out = root / "out"
    args = ["--datasets", "kuka=1", "--data-dir", str(root / "rlds"), "--out", str(out), "--image-size", "32",
            "--depth-model", str(root / "no_weights")]  # fmt: skip
    assert run_main(args) == 0
    return out


@pytest.fixture(scope="module")
def no_export(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("no_export") / "out"
    run(corpus, out, "--stages", "stats,grids")
    return out


# ---------------------------------------------------------------- one set of grid metrics


def test_the_grid_file_inspect_and_the_run_agree(with_depth, capsys):
    out = with_depth
    grid = ActionGrid.load(str(next((out / "grids").glob("*.json"))))
    stored = grid.metrics
    fitted = grid.provenance["datasets"]
    assert fitted == ["bridge_orig", "kuka"] and grid.provenance["excluded"] == ["language_table"]
    assert stored["data"]["datasets"] == fitted
    # the same computation on the export's shards, fitted-on datasets: every stored number, exactly
    again = export_fit(str(out), fitted, grid.provenance["effective_weights"])
    recomputed = fit_metrics(grid, again.fit, fitted, again.steps)
    recomputed.pop("comparison", None)
    assert {k: stored[k] for k in recomputed} == recomputed
    # the stored histograms are the fitted-on data's weighted shares on 128 fixed bins: by hand from the shards
    from grids.fit import variables

    acts, weights = [], []
    for name in fitted:
        a = np.concatenate([read_actions(out / s["path"]) for s in json.loads((out / "manifest.json").read_text())
                            ["datasets"][name]["shards"]])  # fmt: skip
        acts.append(a)
        weights.append(np.full(len(a), grid.provenance["effective_weights"][name] / len(a)))
    v = variables(np.concatenate(acts))
    w = np.concatenate(weights)
    for j, var in enumerate(("x", "y", "z", "theta", "phi", "r", "roll", "pitch", "yaw")):
        lo, hi = stored["histograms"]["ranges"][var]
        h, _ = np.histogram(np.clip(v[:, j], lo, np.nextafter(hi, lo)), bins=128, range=(lo, hi), weights=w)
        np.testing.assert_allclose(stored["histograms"]["shares"][var], h / h.sum(), rtol=1e-3, atol=1e-6)
    every = export_fit(str(out))
    assert every.datasets == list(DATASETS)
    # inspect: the stored numbers alone, then labelled rows for the export's fitted-on and all datasets
    assert inspect.main([str(out), "--out", str(out.parent / "plots_a")]) == 0
    alone = capsys.readouterr().out
    assert inspect.main([str(out), "--data", str(out), "--out", str(out.parent / "plots_b")]) == 0
    text = capsys.readouterr().out
    row = lambda label, t: next(line for line in t.splitlines() if line.startswith(label))  # noqa: E731
    stored_row = row("grid file: fitted-on data", alone)
    assert f"{stored['token_entropy']:.4f}" in stored_row and f"{stored['mean_quantization_error']:.4f}" in stored_row
    assert row("export: fitted-on datasets (2)", text).split()[4:] == stored_row.split()[4:]
    all_row = row("export: all datasets (3)", text)
    every_m = fit_metrics(grid, every.fit, every.datasets, every.steps)
    assert f"{every_m['token_entropy']:.4f}" in all_row and every_m["token_entropy"] != stored["token_entropy"]
    assert len(list((out.parent / "plots_a").glob("*.png"))) == 10  # 9 variables + occupancy (stored metrics)
    assert len(list((out.parent / "plots_b").glob("*.png"))) == 11  # + per-dataset panels


def read_actions(path):
    import pyarrow as pa

    with pa.memory_map(str(path)) as src:
        col = pa.ipc.open_file(src).read_all().column("action").combine_chunks()
    return col.values.to_numpy().reshape(-1, 7).astype(np.float64)


def test_inspect_on_a_directory_without_a_grid_says_what_to_give(tmp_path, capsys):
    assert inspect.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is a directory with no grid file: give the grid file, OUT/grids/<mixture>.json" in err


# ---------------------------------------------------------------- the page in a browser


def json_at(doc, pointer: str):
    for part in pointer.split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


def shown_value(text: str) -> tuple[float, float]:
    """A number as the page shows it -> (value, half a unit of its last digit)."""
    t = text.strip().replace(",", "")
    scale = 0.01 if t.endswith("%") else 1.0
    t = t.rstrip("%")
    mantissa, _, exp = t.lower().partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    tol = 0.5 * 10.0 ** (-decimals) * 10.0 ** int(exp or 0)
    return float(t) * scale, tol * scale


def sources(out: Path) -> dict:
    manifest = json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").exists() else None
    grid = next((out / "grids").glob("*.json"), None)
    return {
        "report": json.loads((out / "report.json").read_text()),
        "manifest": manifest,
        "statistics": json.loads((out / "dataset_statistics.json").read_text()),
        "grid": json.loads(grid.read_text()) if grid else None,
        "timings": json.loads((out / "timings.json").read_text()),
    }


def open_in_chromium(pages: list[Path], shots: Path) -> dict:
    if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        if os.environ.get("SPATIAL_PIPELINE_REQUIRE_BROWSER"):
            pytest.fail(f"no Chromium at {CHROMIUM} (CI installs Debian's chromium package)")
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    results = {}
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            for i, path in enumerate(pages):
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                requested = []
                page.on("request", lambda r, seen=requested: seen.append(r.url))
                page.route(re.compile(r"^(?!file:).*"), lambda route: route.abort())  # nothing leaves the machine
                page.goto(path.as_uri(), wait_until="load")
                shot = shots / f"page{i}.png"
                page.screenshot(path=str(shot), full_page=True)
                results[path] = {
                    "requested": requested,
                    "images": page.evaluate(
                        "Array.from(document.images).map(i => ({alt: i.alt, width: i.naturalWidth, done: i.complete}))"
                    ),
                    "numbers": page.evaluate(
                        "Array.from(document.querySelectorAll('[data-src]'))"
                        ".map(e => ({src: e.dataset.src, path: e.dataset.path, text: e.textContent}))"
                    ),
                    "text": page.inner_text("body"),
                    "screenshot": shot,
                }
                page.close()
        finally:
            browser.close()
    return results


def check_page(out: Path, result: dict) -> None:
    page = out / "report.html"
    assert result["requested"] == [page.as_uri()], result["requested"]
    assert result["images"], "no images on the page"
    bad = [i["alt"] for i in result["images"] if not (i["done"] and i["width"] > 0)]
    assert not bad, f"images that do not decode: {bad}"
    docs = sources(out)
    for n in result["numbers"]:
        expected = json_at(docs[n["src"]], n["path"])
        value, tol = shown_value(n["text"])
        assert abs(value - expected) <= tol * (1 + 1e-9) + 1e-12, (n, expected)
    shown = {(n["src"], n["path"]) for n in result["numbers"]}
    for name in docs["report"]["datasets"]:  # every dataset's counts are on the page, sourced
        for key in ("episodes_read", "steps_read", "episodes_lost"):
            assert ("report", f"datasets/{name}/{key}") in shown, (name, key)
    from PIL import Image

    with Image.open(result["screenshot"]) as im:
        assert im.size[0] == 1280 and im.size[1] > 1500
        assert np.asarray(im.convert("L")).std() > 10  # something was drawn
    keep = os.environ.get("SPATIAL_PIPELINE_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(result["screenshot"], Path(keep) / f"report-{out.parent.name}.png")


def test_report_pages_in_chromium(with_depth, lost_and_skipped, no_export, tmp_path):
    outs = [with_depth, lost_and_skipped, no_export]
    results = open_in_chromium([o / "report.html" for o in outs], tmp_path)
    for out in outs:
        check_page(out, results[out / "report.html"])
    depth, lost, partial = (results[o / "report.html"] for o in outs)
    # with depth: frames and their depth maps, per dataset; the grid's plots; the excluded dataset named
    assert sum(i["alt"].startswith("depth at step") for i in depth["images"]) == 3 * 2 * 3  # 3 datasets x 2 eps x 3
    assert sum(i["alt"].startswith("step ") for i in depth["images"]) == 3 * 2 * 3
    assert {"grid variables over the data", "bin occupancy", "per-dataset grid variables"} <= {
        i["alt"] for i in depth["images"]
    }
    assert "Depth ran: model" in depth["text"] and "left out of the fit: language_table" in depth["text"]
    # one dataset, an episode lost, depth skipped: all said
    report = json.loads((lost_and_skipped / "report.json").read_text())
    assert report["episodes_lost"] == 1 and report["datasets"]["kuka"]["episodes_read"] == 1
    assert "1 problem lost 1 episode(s)" in lost["text"]
    assert "Depth was asked for and skipped: depth skipped: no ZoeDepth checkpoint" in lost["text"]
    assert "the file holds 1 episode(s), dataset_info.json lists 2" in lost["text"]
    # stopped before the export: what the stages wrote, and why the rest is missing
    assert "This run did not export" in partial["text"] and "No export: no depth." in partial["text"]


def test_rebuild_command_writes_the_same_page_and_only_timings_differ(with_depth, corpus, tmp_path):
    page = (with_depth / "report.html").read_bytes()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "pipeline.report", str(with_depth)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == f"wrote {with_depth / 'report.html'}"
    assert (with_depth / "report.html").read_bytes() == page
    # a second identical run: every file the same bytes but the wall times (timings.json, their section)
    other = tmp_path / "again"
    run(corpus, other, "--no-depth")
    first = tmp_path / "first"
    run(corpus, first, "--no-depth")

    a = (first / "report.html").read_text()
    assert TIMINGS_BEGIN in a and "Timings and throughput" in a and str(first) not in a  # wherever the output is
    assert output_digests(first) == output_digests(other)  # report.html compared without its timings section
    assert "timings" not in json.loads((first / "report.json").read_text())


def test_a_run_stopped_by_strict_still_gets_its_page(lost_and_skipped, tmp_path):
    out = tmp_path / "strict"
    args = ["--datasets", "kuka=1", "--data-dir", str(lost_and_skipped.parent / "rlds"), "--out", str(out),
            "--no-depth", "--strict"]  # fmt: skip
    assert run_main(args) == 1
    page = (out / "report.html").read_text()
    assert "<title>Dataset card: custom</title>" in page
    assert "This run stopped before it finished: --strict: 1 problem(s) in the input" in page
    assert json.loads((out / "timings.json").read_text())["stopped"].startswith("--strict: 1 problem(s)")


def test_rebuild_command_on_a_directory_that_is_not_a_run(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "pipeline.report", str(tmp_path)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert (
        r.returncode == 2
        and r.stderr.strip() == f"error: {tmp_path / 'report.json'}: not found (give a run's output directory)"
    )
