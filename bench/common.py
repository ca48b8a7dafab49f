"""Shared pieces of the benchmarks: corpora of a given size, timing + peak memory in a fresh process, and what a process (and each of its threads) has cost so far."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = Path(os.environ.get("SPATIAL_PIPELINE_BENCH", ROOT / ".bench"))
DATASETS = ["bridge_orig", "fractal20220817_data", "kuka", "droid"]  # 4 cameras, 1 large, 1 compressed-state, 3 cameras


SMOKE_HELP = (
    "a smoke run: tiny sizes, about a minute at most; shows the benchmark runs and prints its table "
    "(its figures mean nothing). CI runs every benchmark the README names this way"
)


def add_smoke(parser) -> None:
    """Every benchmark takes --smoke (tests/test_benchmarks.py runs each README command with it)."""
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)


def ensure(episodes: int) -> Path:
    out = BENCH_DIR / f"corpus-{'-'.join(DATASETS)[:40]}-{episodes}"
    marker = out / ".complete"
    if not marker.exists():
        from sources.sample import generate

        generate(out, episodes=episodes, names=list(DATASETS), verbose=False)
        marker.write_text("ok")
    return out


def measure(code: str) -> dict:
    """Run `code` in a fresh Python process. The code sets result["seconds"] around its work (imports
    excluded: they are a constant, not a rate) and may add more keys. Adds peak RSS (MB)."""
    wrapper = textwrap.dedent("""
        import json, os, sys, time
        result = {}
        exec(compile(sys.argv[1], "<bench>", "exec"), {"result": result})
        # VmHWM: this process image's own peak (ru_maxrss would carry the forking parent's peak over exec)
        from bench.common import peak_rss_mb
        result["peak_rss_mb"] = peak_rss_mb(os.getpid())
        print("BENCH " + json.dumps(result))
    """)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
    }
    p = subprocess.run(
        [sys.executable, "-c", wrapper, textwrap.dedent(code)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    line = [x for x in p.stdout.splitlines() if x.startswith("BENCH ")]
    if p.returncode or not line:
        raise RuntimeError(f"benchmark step failed:\n{p.stderr[-3000:]}")
    return json.loads(line[-1][6:])


# ---------------------------------------------------------------- what a process costs


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far, every thread of each."""
    import psutil

    total = 0.0
    for pid in pids:
        t = psutil.Process(pid).cpu_times()
        total += t.user + t.system
    return total


def peak_rss_mb(pid: int) -> float:
    """The peak resident set of a process (VmHWM), MB."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def thread_names() -> dict[int, str]:
    """Native thread id -> Python thread name, of the calling process."""
    import threading

    return {t.native_id: t.name for t in threading.enumerate()}


def threads_cpu(pid: int) -> dict[int, float]:
    """Thread id -> user + system CPU seconds, of every thread of a process (/proc/PID/task/TID/stat)."""
    import os

    ticks, out = os.sysconf("SC_CLK_TCK"), {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return out


def warm_up() -> None:
    """Import what the stages' tasks import, so that the first task does not carry it."""
    import importlib

    for m in ("apache_beam", "apache_beam.runners.dask.transform_evaluator", "tensorflow_datasets",
              "beam_jobs.collect", "beam_jobs.dataset_statistics", "beam_jobs.grid_fit", "beam_jobs.shard_writing"):  # fmt: skip
        importlib.import_module(m)


def table(rows: list[list], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), *(fmt.format(*map(str, r)) for r in rows)])
