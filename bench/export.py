"""python -m bench.export: the export stage's throughput on one core against the per-core limit of its
image work, measured in the same run on the same frames.

limit    decode + resize + JPEG encode of every exported frame (primary and wrist cameras), a plain
         PIL loop in one process: what any exporter at this image size must spend
export   python -m pipeline.run --stages export (DirectRunner, in-process; statistics and grid
         computed before the clock starts), timed after imports
Per core = frames per CPU-second of the process (every thread): the DirectRunner's in-process
scheduling leaves its thread idle part of the wall time, which a throughput per core must not count.
"""

from __future__ import annotations

import argparse

from bench.common import DATASETS, add_smoke, ensure, measure

LIMIT = """
import time
from manifests.registry import load_registry
from transforms.frames import prepare_frames
from sources.episodes import dataset_episodes, is_problem
from sources.rlds import open_dataset
reg = load_registry()
frames = []
for name in {names}:
    cfg = reg.datasets[name]
    for ep in dataset_episodes(open_dataset("{data}", cfg), cfg, "train", images=True):
        if not is_problem(ep):
            frames += [ep.image] + ([ep.wrist_image] if ep.wrist_image is not None else [])
import os
c0, t0 = os.times(), time.perf_counter()
n = 0
for f in frames:
    n += len(prepare_frames(f, {size})[0])
c1 = os.times()
result["seconds"] = time.perf_counter() - t0
result["cpu_seconds"] = (c1.user + c1.system) - (c0.user + c0.system)
result["frames"] = n
"""

EXPORT = """
import os, time, apache_beam, tensorflow, tensorflow_datasets
from pipeline.run import main
args = ["--datasets", ",".join(n + "=1" for n in {names}), "--data-dir", "{data}", "--out", "{out}",
        "--image-size", "{size}", "--no-depth"]
assert main(args + ["--stages", "stats,grids"]) == 0
c0, t0 = os.times(), time.perf_counter()
assert main(args + ["--stages", "export"]) == 0
c1 = os.times()
result["seconds"] = time.perf_counter() - t0
result["cpu_seconds"] = (c1.user + c1.system) - (c0.user + c0.system)  # every thread of the process
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.export", description=__doc__.split("\\n\\n")[0])
    p.add_argument("--episodes", type=int, default=24, help="train episodes per dataset")
    p.add_argument("--size", type=int, default=224)
    add_smoke(p)
    args = p.parse_args(argv)
    if args.smoke:
        args.episodes, args.size = 1, 32
    data = ensure(args.episodes)
    out = str(data) + f"-export-{args.size}"
    names = repr(DATASETS)
    limit = measure(LIMIT.format(data=data, names=names, size=args.size))
    export = measure(EXPORT.format(data=data, names=names, size=args.size, out=out))
    frames = limit["frames"]
    print(
        f"{frames} frames ({', '.join(DATASETS)}; {args.episodes} episodes each) to {args.size}x{args.size} JPEG, one process"
    )
    for name, r in (("limit  (decode + resize + encode)", limit), ("export (the whole stage)", export)):
        print(
            f"  {name:34s} {frames / r['cpu_seconds']:7.1f} frames per CPU-second   "
            f"{frames / r['seconds']:7.1f} frames/s wall"
        )
    print(
        f"export per core: {limit['cpu_seconds'] / export['cpu_seconds']:.2f} x the limit (goal >= 0.60); "
        f"wall: {limit['seconds'] / export['seconds']:.2f} x; peak RSS {export['peak_rss_mb']:.0f} MB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
