"""python -m bench.engines: the export stage on one corpus under each engine, in one run.

in-process   Beam's DirectRunner in the driver's process (the default)
dask x1      Beam's DaskRunner on a local dask.distributed cluster of 1 worker process
dask x2      the same with 2 worker processes
Each runs in a fresh process with a fresh --out, statistics and grid computed before the clock
starts, the dask cluster started and its workers' imports done before it too (start-up is not
per-task overhead). Measured: wall seconds of the export stage and CPU seconds (user + system,
every thread) of the driver (Beam, and on dask the scheduler, client and nannies) and of each
worker process, with the worker's task thread (where the encoding runs) on its own.
Reported, as ratios of figures from the same run: the DaskRunner's overhead with one worker against
the in-process run (goal <= 10%) in CPU-seconds and in wall seconds, per task; the worker's task
thread against the whole in-process run (does the encoding itself run slower in a worker?); the
speed-up of 2 workers over 1 (goal >= 1.7x on 2 cores) and how evenly they split the work; and that
every run wrote byte-identical shards. With --repeat N each figure is the range over N rounds:
on a shared machine the CPU ratios are the ones to read, the wall ones need a quiet machine.
"""

from __future__ import annotations

import argparse

from bench.common import DATASETS, add_smoke, ensure, measure, table

EXPORT = """
import contextlib, json, os, pathlib, time
from bench.common import cpu_seconds, thread_names, threads_cpu, warm_up
from beam_jobs.engine import local_cluster
from beam_jobs.shard_writing import EPISODES_PER_TASK
from pipeline.options import parse_options
from pipeline.plan import make_plan
from pipeline.run import main
from sources.episodes import plan_reads
warm_up()
args = ["--datasets", ",".join(n + "=1" for n in {names}), "--data-dir", "{data}", "--out", "{out}",
        "--image-size", "{size}", "--no-depth"]
assert main(args + ["--stages", "stats,grids"]) == 0
result["tasks"] = len(plan_reads(make_plan(parse_options(args)).datasets, "train", None, EPISODES_PER_TASK))
with local_cluster({workers}) if {workers} else contextlib.nullcontext() as address:
    engine = ["--runner", "dask", "--dask-address", address] if address else []
    pids = []
    if address:
        import distributed
        with distributed.Client(address) as client:
            client.run(warm_up)
            pids = sorted(client.run(os.getpid).values())
    c0, w0, k0, t0 = cpu_seconds([os.getpid()]), [cpu_seconds([p]) for p in pids], [threads_cpu(p) for p in pids], time.perf_counter()
    assert main(args + ["--stages", "export"] + engine) == 0
    result["seconds"] = time.perf_counter() - t0
    result["driver_cpu"] = cpu_seconds([os.getpid()]) - c0
    result["worker_cpu"] = [cpu_seconds([p]) - w for p, w in zip(pids, w0)]
    k1 = [threads_cpu(p) for p in pids]
    names = {{}}
    if address:
        with distributed.Client(address) as client:  # the task threads start with the first task
            pid_of, names_of = client.run(os.getpid), client.run(thread_names)
            names = {{pid_of[a]: names_of[a] for a in pid_of}}
    result["task_thread_cpu"] = [
        sum(c - before.get(t, 0) for t, c in after.items() if "Dask-Default-Threads" in names[p].get(t, ""))
        for p, before, after in zip(pids, k0, k1)
    ]
m = json.loads(pathlib.Path("{out}", "manifest.json").read_text())
result["steps"] = sum(d["num_transitions"] for d in m["datasets"].values())
result["shards"] = sorted(s["sha256"] for d in m["datasets"].values() for s in d["shards"])
"""

ENGINES = (("in-process", 0), ("dask x1", 1), ("dask x2", 2))


def cpu(run: dict) -> float:
    return run["driver_cpu"] + sum(run["worker_cpu"])


def spread(values: list[float], fmt: str) -> str:
    lo, hi = min(values), max(values)
    return (
        fmt.format(lo)
        if len(values) == 1 or fmt.format(lo) == fmt.format(hi)
        else f"{fmt.format(lo)} to {fmt.format(hi)}"
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.engines", description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", type=int, default=50, help="train episodes per dataset (4 datasets)")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--repeat", type=int, default=1, help="rounds of the three engines; figures are their range")
    add_smoke(p)
    args = p.parse_args(argv)
    if args.smoke:
        args.episodes, args.size, args.repeat = 1, 32, 1
    data = ensure(args.episodes)
    rounds = []
    for r in range(args.repeat):
        runs = {}
        for name, workers in ENGINES:
            out = f"{data}-engines-{workers}-{r}"  # fresh: no part or frame of another run reused
            try:
                code = EXPORT.format(names=repr(DATASETS), data=data, out=out, size=args.size, workers=workers)
                runs[name] = measure(code)
            finally:
                import shutil

                shutil.rmtree(out, ignore_errors=True)
        rounds.append(runs)
    print(report(rounds, args))
    same = len({tuple(run["shards"]) for runs in rounds for run in runs.values()}) == 1
    return 0 if same else 1


def report(rounds: list[dict], args) -> str:
    first = rounds[0]["in-process"]
    steps, tasks = first["steps"], first["tasks"]
    lines = [
        f"export of {4 * args.episodes} episodes ({steps} steps, {tasks} tasks; {', '.join(DATASETS)}) at {args.size} px, "
        f"{len(rounds)} round(s)"
    ]
    rows = []
    for i, runs in enumerate(rounds):
        for name, r in runs.items():
            rows.append([
                i + 1, name, f"{r['seconds']:.1f}", f"{steps / r['seconds']:.0f}", f"{cpu(r):.1f}",
                f"{steps / cpu(r):.0f}", f"{r['driver_cpu']:.1f}",
                "/".join(f"{w:.1f}" for w in r["worker_cpu"]) or "-",
                "/".join(f"{w:.1f}" for w in r["task_thread_cpu"]) or "-",
            ])  # fmt: skip
    header = ["round", "engine", "wall s", "steps/s", "CPU s", "steps/CPU-s", "driver CPU s", "workers CPU s",
              "task threads CPU s"]  # fmt: skip
    lines.append(table(rows, header))
    inproc = [r["in-process"] for r in rounds]
    x1 = [r["dask x1"] for r in rounds]
    x2 = [r["dask x2"] for r in rounds]
    cpu_over = [cpu(d) / cpu(i) - 1 for d, i in zip(x1, inproc)]
    wall_over = [d["seconds"] / i["seconds"] - 1 for d, i in zip(x1, inproc)]
    per_task = [1e3 * (cpu(d) - cpu(i)) / tasks for d, i in zip(x1, inproc)]
    encode = [d["task_thread_cpu"][0] / cpu(i) - 1 for d, i in zip(x1, inproc)]
    speedup = [a["seconds"] / b["seconds"] for a, b in zip(x1, x2)]
    balance = [max(b["worker_cpu"]) / sum(b["worker_cpu"]) for b in x2]
    extra = [cpu(b) / cpu(a) - 1 for a, b in zip(x1, x2)]
    same = len({tuple(run["shards"]) for runs in rounds for run in runs.values()}) == 1
    lines += [
        f"dask x1 against in-process: CPU {spread([100 * x for x in cpu_over], '{:+.1f}')}% "
        f"({spread(per_task, '{:.0f}')} CPU-ms per task), wall {spread([100 * x for x in wall_over], '{:+.1f}')}% "
        "(goal <= 10%)",
        f"the worker's task thread (its encoding) against the whole in-process run: "
        f"{spread([100 * x for x in encode], '{:+.1f}')}% CPU",
        f"dask x2 over x1: {spread(speedup, '{:.2f}')}x wall (goal >= 1.7x on 2 cores); busiest worker "
        f"{spread([100 * b for b in balance], '{:.0f}')}% of the workers' CPU; CPU of x2 against x1 "
        f"{spread([100 * x for x in extra], '{:+.1f}')}%",
        f"shards byte-identical across engines and rounds: {'yes' if same else 'NO'}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
