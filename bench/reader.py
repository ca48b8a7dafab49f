"""python -m bench.reader: the trainer's reader, steps/s on one core, against plain JPEG decode.

reader            MixtureDataset, stream mode, shuffle buffer 10,000, no image decode
reader + decode   the same with decode_images=True
plain decode      PIL decode of the same JPEG bytes in a loop (the limit of any reader that decodes)
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
from PIL import Image  # noqa: E402

from bench.common import BENCH_DIR  # noqa: E402
from shards.schema import shard_name, shard_schema, write_table  # noqa: E402
from storage.files import sha256_file  # noqa: E402


def build(out, steps: int, size: int, datasets=("a", "b", "c")) -> list[bytes]:
    """A shard set of `steps` rows per dataset, 40-step episodes, distinct smooth JPEGs at size x size."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    jpegs = []
    for k in range(64):
        img = np.stack([(xx * (k + 1) % 255), (yy * 3 + k) % 255, ((xx + yy) * k) % 255], -1).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=95)
        jpegs.append(buf.getvalue())
    manifest = {"format_version": 1, "weights": {d: 1.0 for d in datasets}, "datasets": {}}
    for d in datasets:
        t = np.arange(steps)
        table = pa.Table.from_pydict(
            {
                "dataset": [d] * steps,
                "episode_id": [f"{d}#{i // 40}" for i in t],
                "step": (t % 40).astype(np.int32),
                "is_first": t % 40 == 0,
                "is_last": (t % 40 == 39) | (t == steps - 1),
                "language_instruction": ["pick up the block"] * steps,
                "image": [jpegs[i % 64] for i in t],
                "action": list(rng.uniform(-1, 1, (steps, 7)).astype(np.float32)),
                "raw_action": list(rng.uniform(-1, 1, (steps, 7)).astype(np.float32)),
                "action_tokens": list(rng.integers(0, 4096, (steps, 3)).astype(np.int32)),
            },
            schema=shard_schema(),
        )
        path = os.path.join(out, "shards", d, shard_name("train", 0, 1))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            write_table(f, table)
        manifest["datasets"][d] = {
            "num_transitions": steps,
            "num_trajectories": -(-steps // 40),
            "shards": [
                {
                    "path": os.path.relpath(path, out),
                    "num_rows": steps,
                    "num_episodes": -(-steps // 40),
                    "sha256": sha256_file(path),
                    "bytes": os.path.getsize(path),
                }
            ],
        }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    return jpegs


def rate(ds, n: int) -> float:
    it = iter(ds)
    for _ in range(1000):  # open the shards, fill the first batches
        next(it)
    t = time.perf_counter()
    for _ in range(n):
        next(it)
    return n / (time.perf_counter() - t)


def main(argv=None) -> int:
    from shards.reader import MixtureDataset

    p = argparse.ArgumentParser(prog="python -m bench.reader", description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=70_000, help="rows per dataset (3 datasets)")
    p.add_argument("--size", type=int, default=224, help="image side, pixels")
    p.add_argument("--n", type=int, default=60_000, help="steps timed")
    args = p.parse_args(argv)
    out = str(BENCH_DIR / f"reader-{args.steps}-{args.size}")
    jpegs = build(out, args.steps, args.size)
    plain = []
    t = time.perf_counter()
    n_plain = min(args.n, 5000)
    for i in range(n_plain):
        with Image.open(io.BytesIO(jpegs[i % 64])) as im:
            plain.append(np.asarray(im.convert("RGB")))
    plain_rate = n_plain / (time.perf_counter() - t)
    no_decode = rate(MixtureDataset(out, mode="stream", shuffle_buffer=10_000, seed=0), args.n)
    decode = rate(
        MixtureDataset(out, mode="stream", shuffle_buffer=10_000, seed=0, decode_images=True), min(args.n, 5000)
    )
    print(
        f"3 datasets x {args.steps:,} steps, {args.size}x{args.size} JPEG ({np.mean([len(j) for j in jpegs]) / 1e3:.1f} kB), one core"
    )
    print(f"  reader, no decode       {no_decode:10,.0f} steps/s   (goal >= 20,000)")
    print(
        f"  reader + JPEG decode    {decode:10,.0f} steps/s   {decode / plain_rate:.2f} x plain decode (goal >= 0.80)"
    )
    print(f"  plain JPEG decode       {plain_rate:10,.0f} images/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
