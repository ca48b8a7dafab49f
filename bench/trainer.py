"""python -m bench.trainer: SpatialVLA training samples/s from the shards on one core, in one run.

plain JPEG decode      PIL decode of the same JPEG bytes in a loop (the limit of any loader that decodes)
reader + decode        shards.reader.MixtureDataset, decode_images=True, action chunks of 4
spatialvla             shards.spatialvla: reader, frames, action chunk, the processor stand-in (no augmentation)
spatialvla + augment   the same with SpatialVLA's train-time augmentation (crop, colour jitter)

Goals: spatialvla + augment >= 200 samples/s per core (a few DataLoader workers per GPU then keep a
VLA training step fed), and spatialvla >= 0.8x plain decode.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from bench.common import BENCH_DIR  # noqa: E402
from bench.reader import build  # noqa: E402
from storage.jsonio import sha256_of  # noqa: E402

torch.set_num_threads(1)


def as_spatialvla_export(out: str) -> None:
    """Add what SpatialVLA's dataset needs to bench.reader's shard set: mixture name, intrinsics, statistics."""
    path = os.path.join(out, "manifest.json")
    with open(path) as f:
        manifest = json.load(f)
    stats = {}
    for name, entry in manifest["datasets"].items():
        entry["intrinsics"] = {"fx": 218.0, "fy": 291.0, "cx": 111.5, "cy": 111.5, "width": 224, "height": 224}
        stat = {k: [v] * 7 for k, v in (("mean", 0.0), ("std", 0.58), ("max", 1.0), ("min", -1.0))}
        stats[name] = {
            "action": {**stat, "q01": [-0.98] * 7, "q99": [0.98] * 7, "mask": [True] * 6 + [False]},
            "num_transitions": entry["num_transitions"],
            "num_trajectories": entry["num_trajectories"],
        }
    manifest.update(mixture="bench", statistics="dataset_statistics.json", statistics_sha256=sha256_of(stats))
    with open(os.path.join(out, "dataset_statistics.json"), "w") as f:
        json.dump(stats, f)
    with open(path, "w") as f:
        json.dump(manifest, f)


def rate(iterable, n: int, warmup: int = 200) -> float:
    it = iter(iterable)
    for _ in range(warmup):  # open the shards, fill the first batches
        next(it)
    t = time.perf_counter()
    for _ in range(n):
        next(it)
    return n / (time.perf_counter() - t)


def main(argv=None) -> int:
    from shards.reader import MixtureDataset
    from shards.spatialvla import SpatialVLADataset
    from shards.standin_processor import StandInProcessor

    p = argparse.ArgumentParser(prog="python -m bench.trainer", description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=20_000, help="rows per dataset (3 datasets)")
    p.add_argument("--n", type=int, default=2_000, help="samples timed per row of the table")
    args = p.parse_args(argv)
    out = str(BENCH_DIR / f"trainer-{args.steps}")
    jpegs = build(out, args.steps, 224)
    as_spatialvla_export(out)

    t = time.perf_counter()
    for i in range(args.n):
        with Image.open(io.BytesIO(jpegs[i % len(jpegs)])) as im:
            np.asarray(im.convert("RGB"))
    plain = args.n / (time.perf_counter() - t)
    reader = rate(MixtureDataset(out, mode="disjoint", seed=0, chunk=4, decode_images=True, verify=False), args.n)

    rates = {}
    with tempfile.TemporaryDirectory() as run_dir:
        for augment in (False, True):
            ds = SpatialVLADataset(out, run_dir, "bench", shuffle_buffer_size=10_000, action_forward_steps=3,
                                   augment=augment)  # fmt: skip
            ds.vla_processor = StandInProcessor()
            rates[augment] = rate(ds, args.n)
    print(f"3 datasets x {args.steps:,} steps, 224x224 JPEG, action chunks of 4, one core (torch threads 1)")
    print(f"  plain JPEG decode       {plain:8,.0f} images/s")
    print(f"  reader + decode         {reader:8,.0f} steps/s    {reader / plain:.2f} x plain decode")
    print(
        f"  spatialvla              {rates[False]:8,.0f} samples/s  {rates[False] / plain:.2f} x plain decode (goal >= 0.80)"
    )
    print(
        f"  spatialvla + augment    {rates[True]:8,.0f} samples/s  {rates[True] / plain:.2f} x plain decode (goal >= 200/s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
