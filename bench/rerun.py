"""python -m bench.rerun: what a rerun costs against the full run it follows, on one corpus, in one run.

full             the whole job (statistics, grid, export) of a 4-dataset mixture into an empty --out
identical        the same command again: "up to date", nothing read, nothing written
reweight         one dataset's weight changed in the mixture file: a new grid, shards rewritten
add one dataset  a fifth dataset (its own data_dir in the mixture file) added to the same --out;
                 then a fresh run of that 5-dataset mixture into an empty directory: the same bytes
                 (every file but the frame cache and the run's timings), and the time the rerun saved
regrid           the 5-dataset mixture tokenized with another grid (--grid FILE, as after grids.rediscretize)
Each is timed around pipeline.run's main() in one fresh process, after its imports and a warm-up
pipeline (Beam's first pipeline in a process pays one-time costs); the ratio is to the full run.
"""

from __future__ import annotations

import argparse

from bench.common import BENCH_DIR, DATASETS, ensure, measure, table

ADDED = "toto"

RERUNS = """
import contextlib, hashlib, io, json, pathlib, re, shutil, time
from grids.grid import uniform_grid
from pipeline.run import main
from storage.jsonio import write_json

work = pathlib.Path("{work}")
shutil.rmtree(work, ignore_errors=True)
work.mkdir(parents=True)
out, mix, grid = work / "out", work / "mix.yaml", work / "uniform.json"
write_json(str(grid), uniform_grid().to_json())

def mixture(weights, added=False):
    lines = [f"  {{n}}: {{w}}" for n, w in weights.items()]
    if added:
        lines.append("  {added}: {{weight: 1.0, data_dir: {added_root}}}")
    mix.write_text("name: bench_rerun\\ndatasets:\\n" + "\\n".join(lines) + "\\n")

def run(*extra, to=out):
    err = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stderr(err):
        code = main(["--mixture", str(mix), "--data-dir", "{data}", "--out", str(to), "--no-depth",
                     "--image-size", "{size}", *extra])
    seconds = time.perf_counter() - t0
    assert code == 0, err.getvalue()[-3000:]
    m = re.search(r"(\\d+) task\\(s\\) take their frames from the frame cache \\(no image decoded\\), (\\d+) are encoded",
                  err.getvalue())
    return {{"seconds": seconds, "cached": int(m.group(1)) if m else None, "encoded": int(m.group(2)) if m else 0}}

def hashes(root):  # timings.json and report.html (which shows them) hold the run's own timings
    return {{str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file() and ".cache" not in p.parts and p.name not in ("timings.json", "report.html")}}

weights = {{n: 1.0 for n in {names}}}
mixture(weights)
run("--stages", "stats", to=work / "warm-up")  # Beam's first pipeline in a process pays one-time costs
steps = {{"full": run(), "identical": run()}}
weights["{reweighted}"] = 3.0
mixture(weights)
steps["reweight"] = run()
mixture(weights, added=True)
steps["add one dataset"] = run()
steps["fresh run of that mixture"] = run(to=work / "fresh")
result["same_bytes"] = hashes(out) == hashes(work / "fresh")
steps["regrid"] = run("--grid", str(grid))
result["steps"] = steps
result["steps_exported"] = sum(d["num_transitions"] for d in json.loads((out / "manifest.json").read_text())["datasets"].values())
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.rerun", description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", type=int, default=50, help="train episodes per dataset (4 datasets, then a fifth)")
    p.add_argument("--size", type=int, default=224, help="exported image size")
    p.add_argument("--smoke", action="store_true", help="tiny sizes (2 episodes, 32 px): checks that it runs")
    args = p.parse_args(argv)
    episodes, size = (2, 32) if args.smoke else (args.episodes, args.size)
    data = ensure(episodes)
    added_root = BENCH_DIR / f"corpus-{ADDED}-{episodes}"
    if not (added_root / ".complete").exists():
        from sources.sample import generate

        generate(added_root, episodes=episodes, names=[ADDED], verbose=False)
        (added_root / ".complete").write_text("ok")
    r = measure(RERUNS.format(work=f"{data}-rerun-{size}", data=data, size=size, names=repr(DATASETS),
                              reweighted=DATASETS[-1], added=ADDED, added_root=added_root))  # fmt: skip
    steps = r["steps"]
    full = steps["full"]["seconds"]
    print(f"{len(DATASETS)} datasets x {episodes} episodes ({', '.join(DATASETS)}), then {ADDED}; {size} px; "
          f"{r['steps_exported']} steps in the last export")  # fmt: skip
    rows = []
    for name in ("full", "identical", "reweight", "add one dataset", "regrid", "fresh run of that mixture"):
        s = steps[name]
        frames = "-" if s["cached"] is None else f"{s['cached']} from cache, {s['encoded']} encoded"
        rows.append([name, f"{s['seconds']:.2f}", f"{s['seconds'] / full:.3f}", frames])
    print(table(rows, ["run", "seconds", "x full run", "export tasks: frames"]))
    add, fresh = steps["add one dataset"]["seconds"], steps["fresh run of that mixture"]["seconds"]
    print(f"add one dataset: {add / fresh:.2f}x a fresh run of the 5-dataset mixture; same bytes as that fresh run: "
          f"{'yes' if r['same_bytes'] else 'NO'}")  # fmt: skip
    return 0 if r["same_bytes"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
