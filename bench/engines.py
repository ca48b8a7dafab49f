"""python -m bench.engines: the export stage on one corpus under each engine, in one run.

in-process   Beam's DirectRunner in the driver's process (the default)
dask x1      Beam's DaskRunner on a local dask.distributed cluster of 1 worker process
dask x2      the same with 2 worker processes
Each runs in a fresh process, statistics and grid computed before the clock starts, the dask
cluster started and its workers' imports done before it too (start-up is not per-element
overhead); steps/s = exported steps / wall seconds of the export stage.
Reported: the speed-up of 2 workers over 1 (goal >= 1.6x on 2 cores) and the DaskRunner's
overhead with one worker against the in-process run (goal <= 10%); and that all three wrote
byte-identical shards.
"""

from __future__ import annotations

import argparse

from bench.common import DATASETS, add_smoke, ensure, measure, table

EXPORT = """
import contextlib, json, pathlib, time, apache_beam, distributed
from beam_jobs.engine import local_cluster
from pipeline.run import main
args = ["--datasets", ",".join(n + "=1" for n in {names}), "--data-dir", "{data}", "--out", "{out}",
        "--image-size", "{size}", "--no-depth"]
assert main(args + ["--stages", "stats,grids"]) == 0
with local_cluster({workers}) if {workers} else contextlib.nullcontext() as address:
    engine = ["--runner", "dask", "--dask-address", address] if address else []
    if address:  # the workers import what the tasks need first: start-up is not per-element overhead
        with distributed.Client(address) as client:
            client.run(lambda: [__import__(m) for m in ("beam_jobs.shard_writing", "beam_jobs.collect",
                                                          "sources.rlds", "apache_beam.runners.dask.dask_runner")])
    t0 = time.perf_counter()
    assert main(args + ["--stages", "export"] + engine) == 0
    result["seconds"] = time.perf_counter() - t0
m = json.loads(pathlib.Path("{out}", "manifest.json").read_text())
result["steps"] = sum(d["num_transitions"] for d in m["datasets"].values())
result["shards"] = sorted(s["sha256"] for d in m["datasets"].values() for s in d["shards"])
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.engines", description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", type=int, default=50, help="train episodes per dataset (4 datasets)")
    p.add_argument("--size", type=int, default=224)
    add_smoke(p)
    args = p.parse_args(argv)
    if args.smoke:
        args.episodes, args.size = 1, 32
    data = ensure(args.episodes)
    runs = {}
    for name, workers in (("in-process", 0), ("dask x1", 1), ("dask x2", 2)):
        out = f"{data}-engines-{workers}"
        runs[name] = measure(EXPORT.format(names=repr(DATASETS), data=data, out=out, size=args.size, workers=workers))
    steps = runs["in-process"]["steps"]
    print(f"export of {4 * args.episodes} episodes ({steps} steps; {', '.join(DATASETS)}) at {args.size} px")
    rows = [[k, f"{r['seconds']:.1f}", f"{steps / r['seconds']:.0f}"] for k, r in runs.items()]
    print(table(rows, ["engine", "seconds", "steps/s"]))
    same = len({tuple(r["shards"]) for r in runs.values()}) == 1
    speedup = runs["dask x1"]["seconds"] / runs["dask x2"]["seconds"]
    overhead = runs["dask x1"]["seconds"] / runs["in-process"]["seconds"] - 1
    print(
        f"dask 2 workers over 1: {speedup:.2f}x (goal >= 1.6x on 2 cores); dask 1 worker against in-process: "
        f"{100 * overhead:+.1f}% (goal <= 10%); shards byte-identical across engines: {'yes' if same else 'NO'}"
    )
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
