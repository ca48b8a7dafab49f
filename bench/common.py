"""Shared pieces of the benchmarks: corpora of a given size, and timing + peak memory in a fresh process."""

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
        import json, sys, time
        result = {}
        exec(compile(sys.argv[1], "<bench>", "exec"), {"result": result})
        # VmHWM: this process image's own peak (ru_maxrss would carry the forking parent's peak over exec)
        hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
        result["peak_rss_mb"] = int(hwm.split()[1]) / 1024
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


def table(rows: list[list], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), *(fmt.format(*map(str, r)) for r in rows)])
