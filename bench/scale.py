"""python -m bench.scale: the whole pipeline (stats, grids, export; no depth) at 1x, 4x and 16x
the sample corpus, in-process and on a local dask cluster: does the cost per step stay flat?

corpus    the sample corpus of 4 datasets (bench.common.DATASETS, --episodes train episodes each,
          written by sources.sample once and cached under .bench/); kx lists every train shard
          k times in dataset_info.json, as k hard links (nothing copied): k times the episodes of
          the same content, so that the cost per step compares like with like across scales
runs      each (engine, scale) in a fresh process with a fresh --out (nothing reused); stats, grids
          and export each timed after imports and, on dask, after the cluster started and its
          workers imported what the tasks need (start-up: a constant, reported on its own)
CPU       user + system seconds of the driver (every thread: Beam, the dask scheduler, client and
          nannies) plus those of every worker process (psutil): on a shared machine the CPU a run
          takes is what stays comparable, wall seconds are printed beside it
memory    peak RSS (VmHWM) of the driver and of each worker process. Memory is bounded by a shard (the
          export assembles one shard at a time): --shard-mb is small enough that every scale writes
          full shards, as an OXE-size export does at its default 256 MB, so that what the ratio
          shows is whatever else grows with the export
Reported: CPU-seconds per step at 16x / 1x (goal <= 1.1) and the marginal cost per step from 4x to
16x against 1x to 4x; peak RSS 16x / 1x of the driver and of each worker (goal <= 1.2); whether
both engines wrote the same shards at each scale; the figures the README's oxe_magic_soup
extrapolation is computed from (CPU-seconds per step and per frame, bytes per step).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from bench.common import DATASETS, add_smoke, ensure, measure, table

RUN = """
import contextlib, json, os, pathlib, time
from bench.common import cpu_seconds, peak_rss_mb, warm_up
from beam_jobs.engine import local_cluster
from pipeline.run import main
warm_up()
args = ["--datasets", ",".join(n + "=1" for n in {names}), "--data-dir", "{data}", "--out", "{out}",
        "--image-size", "{size}", "--no-depth", "--shard-mb", "{shard_mb}"]
t0, c0 = time.perf_counter(), cpu_seconds([os.getpid()])
with local_cluster({workers}) if {workers} else contextlib.nullcontext() as address:
    pids = []
    if address:
        import distributed
        with distributed.Client(address) as client:
            client.run(warm_up)
            pids = sorted(client.run(os.getpid).values())
    engine = ["--runner", "dask", "--dask-address", address] if address else []
    result["startup"] = {{"seconds": time.perf_counter() - t0, "driver_cpu": cpu_seconds([os.getpid()]) - c0}}
    for stage in ("stats", "grids", "export"):
        t, driver, workers = time.perf_counter(), cpu_seconds([os.getpid()]), [cpu_seconds([p]) for p in pids]
        assert main(args + ["--stages", stage] + engine) == 0, stage
        result[stage] = {{
            "seconds": time.perf_counter() - t,
            "driver_cpu": cpu_seconds([os.getpid()]) - driver,
            "worker_cpu": [cpu_seconds([p]) - w for p, w in zip(pids, workers)],
        }}
    result["worker_peak_rss_mb"] = [peak_rss_mb(p) for p in pids]
m = json.loads(pathlib.Path("{out}", "manifest.json").read_text())
ds = m["datasets"].values()
result["steps"] = sum(d["num_transitions"] for d in ds)
result["frames"] = sum(d["num_transitions"] * (2 if d["has_wrist_image"] else 1) for d in ds)
result["bytes"] = sum(s["bytes"] for d in ds for s in d["shards"])
result["shards"] = sorted(s["sha256"] for d in ds for s in d["shards"])
result["largest_shard"] = max(s["bytes"] for d in ds for s in d["shards"])
"""

STAGES = ("stats", "grids", "export")


def scaled_corpus(base: Path, factor: int, out: Path | None = None) -> Path:
    """`base` with every dataset's train shards listed `factor` times (hard links to the same files),
    at `out` (default: beside base)."""
    if factor == 1:
        return base
    from sources.rlds import RLDSDataset

    out = out or base.with_name(f"{base.name}-x{factor}")
    if (out / ".complete").exists():
        return out
    for info_path in sorted(base.glob("*/*/dataset_info.json")):
        src = info_path.parent
        dst = out / src.relative_to(base)
        dst.mkdir(parents=True, exist_ok=True)
        info = json.loads(info_path.read_text())
        old = RLDSDataset(str(src))
        for split in info["splits"]:
            if split["name"] == "train":
                split["shardLengths"] = split["shardLengths"] * factor
                split["numBytes"] = str(int(split.get("numBytes", 0)) * factor)
        (dst / "dataset_info.json").write_text(json.dumps(info, indent=2, sort_keys=True))
        for f in src.glob("*.json"):
            if f.name != "dataset_info.json":
                (dst / f.name).write_bytes(f.read_bytes())
        new = RLDSDataset(str(dst))
        for split in info["splits"]:
            sources = [p for p, _ in old.shard_files(split["name"])]
            for i, (path, _) in enumerate(new.shard_files(split["name"])):
                if not os.path.exists(path):
                    os.link(sources[i % len(sources)], path)
    (out / ".complete").write_text("ok")
    return out


def cpu_of(run: dict, stage: str) -> float:
    return run[stage]["driver_cpu"] + sum(run[stage]["worker_cpu"])


def total_cpu(run: dict) -> float:
    return sum(cpu_of(run, s) for s in STAGES)


def total_seconds(run: dict) -> float:
    return sum(run[s]["seconds"] for s in STAGES)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", type=int, default=24, help="train episodes per dataset at 1x (4 datasets)")
    p.add_argument("--factors", default="1,4,16", help="corpus scales, the first one the reference")
    p.add_argument("--workers", type=int, default=2, help="worker processes of the local dask cluster")
    p.add_argument("--size", type=int, default=224, help="exported image side, pixels")
    p.add_argument("--shard-mb", type=float, default=1.0, help="target shard size (1x: about 1.4 MB per dataset)")
    p.add_argument("--engines", default="in-process,dask", help="in-process, dask or both")
    p.add_argument("--json", help="also write every measurement to this file")
    add_smoke(p)  # 1 episode per dataset, 1x and 2x, 32 px
    args = p.parse_args(argv)
    if args.smoke:
        args.episodes, args.factors, args.size = 1, "1,2", 32
    factors = [int(f) for f in args.factors.split(",")]
    engines = {"in-process": 0, "dask": args.workers}
    chosen = [e.strip() for e in args.engines.split(",")]
    if not factors or any(f < 1 for f in factors) or any(e not in engines for e in chosen):
        p.error("--factors: positive integers; --engines: in-process and/or dask")
    base = ensure(args.episodes)
    runs: dict[tuple[str, int], dict] = {}
    for factor in factors:
        data = scaled_corpus(base, factor)
        for name in chosen:
            out = f"{data}-scale-{name}-{os.getpid()}"  # fresh: no part, cache or frame of another run reused
            code = RUN.format(names=repr(DATASETS), data=data, out=out, size=args.size, workers=engines[name],
                              shard_mb=args.shard_mb)  # fmt: skip
            try:
                runs[name, factor] = measure(code)
            finally:
                import shutil

                shutil.rmtree(out, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps({f"{k[0]} {k[1]}x": v for k, v in runs.items()}, indent=2))
    print(report(runs, factors, chosen, args))
    same = all(len({tuple(runs[e, f]["shards"]) for e in chosen}) == 1 for f in factors)
    return 0 if same else 1


def report(runs: dict, factors: list[int], engines: list[str], args) -> str:
    lines = [
        f"whole pipeline (stats, grids, export at {args.size} px in shards of {args.shard_mb:g} MB; no depth) on "
        f"{len(DATASETS)} datasets ({', '.join(DATASETS)}), {args.episodes} train episodes each at 1x; "
        f"dask: {args.workers} worker processes"
    ]
    rows = []
    for (engine, factor), r in runs.items():
        steps = r["steps"]
        rows.append([
            engine, f"{factor}x", steps,
            *(f"{1e3 * cpu_of(r, s) / steps:.2f}" for s in STAGES),
            f"{1e3 * total_cpu(r) / steps:.2f}", f"{total_seconds(r):.1f}",
            f"{r['startup']['seconds']:.1f}",
            len(r["shards"]), f"{r['largest_shard'] / 1e6:.2f}",
            f"{r['peak_rss_mb']:.0f}", "/".join(f"{m:.0f}" for m in r["worker_peak_rss_mb"]) or "-",
        ])  # fmt: skip
    header = ["engine", "scale", "steps", "stats ms/step", "grids ms/step", "export ms/step", "CPU ms/step",
              "wall s", "start-up s", "shards", "largest MB", "driver MB", "workers MB"]  # fmt: skip
    lines.append(table(rows, header))
    lines.append("CPU: driver + workers, user + system; ms/step = CPU-milliseconds per exported step")
    first, last = factors[0], factors[-1]
    for engine in engines:
        a, z = runs[engine, first], runs[engine, last]
        per_step = (total_cpu(z) / z["steps"]) / (total_cpu(a) / a["steps"])
        wall = (total_seconds(z) / z["steps"]) / (total_seconds(a) / a["steps"])
        line = f"{engine}: CPU per step {last}x / {first}x: {per_step:.2f} (goal <= 1.1; wall {wall:.2f})"
        if len(factors) >= 3:
            b = runs[engine, factors[-2]]
            marginal = ((total_cpu(z) - total_cpu(b)) / (z["steps"] - b["steps"])) / (
                (total_cpu(b) - total_cpu(a)) / (b["steps"] - a["steps"])
            )
            line += f"; marginal CPU per step {factors[-2]}x->{last}x against {first}x->{factors[-2]}x: {marginal:.2f}"
        line += f"; peak RSS {last}x / {first}x: driver {z['peak_rss_mb'] / a['peak_rss_mb']:.2f}"
        if z["worker_peak_rss_mb"]:
            ratios = [w / v for w, v in zip(z["worker_peak_rss_mb"], a["worker_peak_rss_mb"])]
            line += f", workers {'/'.join(f'{x:.2f}' for x in ratios)}"
        lines.append(line + " (goal <= 1.2)")
    same = {f: len({tuple(runs[e, f]["shards"]) for e in engines}) == 1 for f in factors}
    if len(engines) > 1:
        lines.append("shards byte-identical across engines: " + ", ".join(
            f"{f}x {'yes' if same[f] else 'NO'}" for f in factors))  # fmt: skip
    z = runs[engines[0], last]
    lines.append(
        f"for the extrapolation ({engines[0]}, {last}x): {1e3 * total_cpu(z) / z['steps']:.2f} CPU-ms per step, "
        f"{1e3 * cpu_of(z, 'export') / z['frames']:.2f} CPU-ms per exported frame, "
        f"{z['frames'] / z['steps']:.2f} frames per step, {z['bytes'] / z['steps'] / 1e3:.1f} kB of shards per step"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
