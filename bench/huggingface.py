"""python -m bench.huggingface OUT: what loading an export with Hugging Face `datasets` costs, per way.

Each way runs in a process of its own with an empty datasets cache; it loads the whole export and
reads every row (images left encoded). Printed: bytes written into the cache and the process's peak
RSS growth over its start (imports done, torch included: datasets imports it for any IterableDataset),
each against the shards' bytes on disk, and seconds.

  load_dataset("arrow")      datasets' own loader (shards.huggingface.load_export(in_memory=False))
  load_export                the map-style Dataset held in memory, nothing written
  load_export streaming      an IterableDataset, one record batch at a time, nothing written
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import BENCH_DIR, ROOT, add_smoke

SMOKE_DATA = ROOT / "tests" / "data" / "bridge_debug"

WAYS = {
    'load_dataset("arrow")': {"in_memory": False},
    "load_export": {},
    "load_export streaming": {"streaming": True},
}


def _measure(out: str, kwargs: dict) -> dict:
    import datasets

    from shards.huggingface import load_export

    try:  # datasets' IterableDataset imports torch where it is installed (~500 MB): not the data's cost
        import torch  # noqa: F401
    except ImportError:
        pass

    cache = Path(datasets.config.HF_DATASETS_CACHE)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    ds = load_export(out, verify=False, decode_images=False, **kwargs)
    rows = sum(1 for _ in ds)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    written = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file()) if cache.exists() else 0
    return {"rows": rows, "seconds": seconds, "cache_bytes": written, "rss_growth": (peak - base) * 1024}


def smoke_export() -> str:
    """A tiny export (the real Bridge slice of the tests, 32 px, no depth), made once in BENCH_DIR."""
    out = BENCH_DIR / "huggingface-smoke-export"
    if not (out / "manifest.json").exists():
        cmd = [sys.executable, "-m", "pipeline.run", "--mixture", "bridge", "--data-dir", str(SMOKE_DATA)]
        subprocess.run([*cmd, "--out", str(out), "--no-depth", "--image-size", "32"], cwd=ROOT, check=True)
    return str(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.huggingface", description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", help="an export (with --smoke: a tiny one is made when not given)")
    parser.add_argument("--way", help=argparse.SUPPRESS)  # one way, in this process (the child)
    add_smoke(parser)
    args = parser.parse_args(argv)
    if args.out is None and not args.smoke:
        parser.error("OUT (an export) is required without --smoke")
    if args.out is None:
        args.out = smoke_export()
    if args.way:
        print(json.dumps(_measure(args.out, WAYS[args.way])))
        return 0
    manifest = json.loads(Path(args.out, "manifest.json").read_text())
    shard_bytes = sum(s["bytes"] for d in manifest["datasets"].values() for s in d["shards"])
    print(f"export {args.out}: {shard_bytes / 1e6:.2f} MB of shards")
    print(
        f"{'way':<26} {'rows':>7} {'cache written':>15} {'x shards':>9} {'peak RSS growth':>16} {'x shards':>9} {'s':>6}"
    )
    for way in WAYS:
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "HF_DATASETS_CACHE": cache}
            cmd = [sys.executable, "-m", "bench.huggingface", args.out, "--way", way]
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        m = json.loads(r.stdout.strip().splitlines()[-1])
        print(
            f"{way:<26} {m['rows']:>7} {m['cache_bytes'] / 1e6:>12.2f} MB {m['cache_bytes'] / shard_bytes:>8.2f}x "
            f"{m['rss_growth'] / 1e6:>13.1f} MB {m['rss_growth'] / shard_bytes:>8.2f}x {m['seconds']:>6.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
