"""python -m bench.reader: the trainer's reader, steps/s on one core, what its checksums cost, and the
bytes its construction reads.

reader            MixtureDataset, stream mode, shuffle buffer 10,000, no image decode, checksums on
reader, verify=F  the same without checksums, the two advanced in turns: the baseline of their cost
checksums         the hashing alone (every column the reader reads, every batch), per step, as a
                  share of the reader's time per step (goal <= 5%)
reader + decode   checksums on, decode_images=True, against plain decode
plain decode      PIL decode of the same JPEG bytes in a loop (the limit of any reader that decodes)
construction      MixtureDataset(OUT) on a small and a large export (same shards, --large-gb of
                  data): bytes read (/proc/self/io rchar: page cache or not) and seconds, against
                  hashing every shard (what construction did before: sha256 of the whole export)

    python -m bench.reader            # 3 x 70,000 steps at 224 px, a 12 MB and a 2 GB export
    python -m bench.reader --smoke    # a tiny run (< 1 minute), the same table
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
from PIL import Image  # noqa: E402

from bench.common import BENCH_DIR, add_smoke  # noqa: E402
from manifests.weights import effective_weights  # noqa: E402
from shards.schema import shard_name, shard_schema, write_table  # noqa: E402
from storage.files import sha256_file  # noqa: E402


def write_export(out: str, tables: dict[str, list[pa.Table]], rows_per_batch: int = 1024) -> dict:
    """Shards (write_table) and a manifest for {dataset: [shard tables]}; returns the manifest."""
    manifest = {"format_version": 1, "weights": {d: 1.0 for d in tables}, "datasets": {}}
    for d, shards in tables.items():
        entries = []
        for i, table in enumerate(shards):
            path = os.path.join(out, "shards", d, shard_name("train", i, len(shards)))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                pins = write_table(f, table, rows_per_batch)
            is_last = table.column("is_last").to_numpy(zero_copy_only=False)
            entries.append(
                {
                    "path": os.path.relpath(path, out),
                    "num_rows": table.num_rows,
                    "num_episodes": int(is_last.sum()),
                    "sha256": sha256_file(path),
                    "bytes": os.path.getsize(path),
                    **pins,
                }
            )
        manifest["datasets"][d] = {
            "num_transitions": sum(e["num_rows"] for e in entries),
            "num_trajectories": sum(e["num_episodes"] for e in entries),
            "shards": entries,
        }
    transitions = {d: m["num_transitions"] for d, m in manifest["datasets"].items()}
    manifest["effective_weights"] = effective_weights(manifest["weights"], transitions)
    manifest["columns"] = shard_schema().names
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    return manifest


def steps(d: str, n: int, images: pa.Array, rng) -> pa.Table:
    """n rows of dataset d in 40-step episodes, with the given image column."""
    t = np.arange(n)
    return pa.Table.from_pydict(
        {
            "dataset": [d] * n,
            "episode_id": [f"{d}#{i // 40}" for i in t],
            "step": (t % 40).astype(np.int32),
            "is_first": t % 40 == 0,
            "is_last": (t % 40 == 39) | (t == n - 1),
            "language_instruction": ["pick up the block"] * n,
            "image": images,
            "action": list(rng.uniform(-1, 1, (n, 7)).astype(np.float32)),
            "raw_action": list(rng.uniform(-1, 1, (n, 7)).astype(np.float32)),
            "action_tokens": list(rng.integers(0, 4096, (n, 3)).astype(np.int32)),
        },
        schema=shard_schema(),
    )


def build(out: str, n: int, size: int, datasets=("a", "b", "c")) -> list[bytes]:
    """n rows per dataset, one shard each, distinct smooth JPEGs at size x size."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    jpegs = []
    for k in range(64):
        img = np.stack([(xx * (k + 1) % 255), (yy * 3 + k) % 255, ((xx + yy) * k) % 255], -1).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=95)
        jpegs.append(buf.getvalue())
    write_export(
        out, {d: [steps(d, n, pa.array([jpegs[i % 64] for i in range(n)], pa.binary()), rng)] for d in datasets}
    )
    return jpegs


def random_images(n: int, size: int, rng) -> pa.Array:
    """n distinct incompressible 'images' of `size` bytes, built without a copy per row."""
    data = pa.py_buffer(rng.bytes(n * size))
    return pa.BinaryArray.from_buffers(
        pa.binary(), n, [None, pa.py_buffer((np.arange(n + 1) * size).astype(np.int32)), data]
    )


def build_sized(out: str, shards: int, rows: int, image_bytes: int) -> int:
    """`shards` shards of `rows` rows each with images of `image_bytes`: the same manifest layout for
    any size. Returns the export's bytes."""
    rng = np.random.default_rng(1)
    tables = {"a": [steps("a", rows, random_images(rows, image_bytes, rng), rng) for _ in range(shards)]}
    manifest = write_export(out, tables)
    return sum(s["bytes"] for s in manifest["datasets"]["a"]["shards"])


def rchar() -> int:
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("rchar")).split()[1])


def construction(out: str) -> tuple[int, float]:
    """Bytes read and seconds of MixtureDataset(out) (after a first construction: imports done)."""
    from shards.reader import MixtureDataset

    MixtureDataset(out)
    before, t = rchar(), time.perf_counter()
    MixtureDataset(out)
    return rchar() - before, time.perf_counter() - t


def hash_everything(out: str) -> tuple[int, float]:
    """What construction did before read-time integrity: the sha256 of every shard."""
    from shards.manifest import verify_manifest

    before, t = rchar(), time.perf_counter()
    verify_manifest(out, check_hashes=True)
    return rchar() - before, time.perf_counter() - t


def rate(ds, n: int, warmup: int = 1000) -> float:
    """Steps per CPU-second of this process (the machine may be shared: wall time would count others)."""
    it = iter(ds)
    for _ in range(warmup):  # open the shards, fill the first batches
        next(it)
    t = time.process_time()
    for _ in range(n):
        next(it)
    return n / (time.process_time() - t)


def paired_rates(a, b, n: int, warmup: int = 1000, block: int = 250) -> tuple[float, float]:
    """Steps per CPU-second of two readers advanced in turns of `block` steps: drifts of a shared
    machine's load fall on both alike."""
    its = [iter(a), iter(b)]
    for it in its:
        for _ in range(warmup):
            next(it)
    seconds = [0.0, 0.0]
    for _ in range(max(1, n // block)):
        for k, it in enumerate(its):
            t = time.process_time()
            for _ in range(block):
                next(it)
            seconds[k] += time.process_time() - t
    return max(1, n // block) * block / seconds[0], max(1, n // block) * block / seconds[1]


def checksum_seconds_per_step(out: str, columns: list[str] | None = None) -> float:
    """What verification adds, alone, per row: reading and converting every record batch of every shard
    as the reader does (the columns it reads), checked against its checksum table, minus the same
    unchecked; plus checking each shard's table and leading schema when it is opened (amortized over
    its rows). CPU seconds, the better of two tries of each batch (the machine may be shared)."""
    from shards.manifest import load_manifest, shard_path
    from shards.schema import ShardFile

    def convert(f, b, checked):
        batch = f.read_batch(b, columns, fused=checked)
        for name, col in zip(batch.schema.names, batch.columns):
            f.read_values(b, name, col) if checked else col.to_pylist()

    manifest = load_manifest(out)
    seconds, rows = 0.0, 0
    for ds in manifest["datasets"].values():
        for s in ds["shards"]:
            path = shard_path(out, s)
            t = time.process_time()
            plain = ShardFile(path, s, s["path"], verify=False)
            unchecked = time.process_time() - t
            t = time.process_time()
            checked = ShardFile(path, s, s["path"], verify=True)
            seconds += max(0.0, time.process_time() - t - unchecked)
            for b in range(len(checked.offsets) - 1):
                best = {True: float("inf"), False: float("inf")}
                for _ in range(2):
                    for f, on in ((checked, True), (plain, False)):
                        t = time.process_time()
                        convert(f, b, on)
                        best[on] = min(best[on], time.process_time() - t)
                seconds += best[True] - best[False]
                rows += int(checked.offsets[b + 1] - checked.offsets[b])
    return seconds / rows


def main(argv=None) -> int:
    from shards.reader import MixtureDataset

    p = argparse.ArgumentParser(prog="python -m bench.reader", description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=70_000, help="rows per dataset (3 datasets)")
    p.add_argument("--size", type=int, default=224, help="image side, pixels")
    p.add_argument("--n", type=int, default=60_000, help="steps timed")
    p.add_argument("--large-gb", type=float, default=2.0, help="the large export of the construction rows, GB")
    add_smoke(p)
    args = p.parse_args(argv)
    if args.smoke:
        args.steps, args.size, args.n, args.large_gb = 3000, 64, 3000, 0.05
    out = str(BENCH_DIR / f"reader-{args.steps}-{args.size}")
    jpegs = build(out, args.steps, args.size)
    warmup = min(1000, args.steps // 3)
    plain = []
    t = time.process_time()
    n_plain = min(args.n, 5000)
    for i in range(n_plain):
        with Image.open(io.BytesIO(jpegs[i % 64])) as im:
            plain.append(np.asarray(im.convert("RGB")))
    plain_rate = n_plain / (time.process_time() - t)
    checked, unchecked = paired_rates(
        MixtureDataset(out, shuffle_buffer=10_000, seed=0),
        MixtureDataset(out, shuffle_buffer=10_000, seed=0, verify=False),
        args.n,
        warmup,
    )
    hashing = checksum_seconds_per_step(out)
    decode = rate(MixtureDataset(out, shuffle_buffer=10_000, seed=0, decode_images=True), min(args.n, 5000), warmup)

    # construction: the same 32 shards of 1,000 rows, ~12 MB or --large-gb of images
    sizes = {"small": 12e6, "large": args.large_gb * 1e9}
    rows = {}
    tmp = tempfile.mkdtemp(prefix="bench-reader-")
    try:
        for name, total in sizes.items():
            export = os.path.join(tmp, name)
            size = build_sized(export, 32, 1000, max(1, int(total / 32_000)))
            read, seconds = construction(export)
            old_read, old_seconds = hash_everything(export)
            rows[name] = (
                size,
                read,
                seconds,
                old_read,
                old_seconds,
                os.path.getsize(os.path.join(export, "manifest.json")),
            )
            shutil.rmtree(export)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    kb = np.mean([len(j) for j in jpegs]) / 1e3
    print(f"3 datasets x {args.steps:,} steps, {args.size}x{args.size} JPEG ({kb:.1f} kB), per CPU-second")
    print(f"  reader, no decode           {checked:10,.0f} steps/s   (goal >= 20,000)")
    print(
        f"  reader, no decode, verify=F {unchecked:10,.0f} steps/s   checksums cost {1 - checked / unchecked:6.1%} of it"
    )
    print(
        f"  checksums alone             {hashing * 1e6:10.2f} us/step  {hashing * unchecked:6.1%} of the reader's time per step (goal <= 5%)"
    )
    print(
        f"  reader + JPEG decode        {decode:10,.0f} steps/s   {decode / plain_rate:.2f} x plain decode (goal >= 0.80)"
    )
    print(f"  plain JPEG decode           {plain_rate:10,.0f} images/s")
    print("construction of MixtureDataset(OUT), 32 shards x 1,000 rows (rchar: bytes read, page cache or not)")
    for name, (size, read, seconds, old_read, old_seconds, manifest) in rows.items():
        print(
            f"  {name:5s} export {size / 1e6:9,.1f} MB: reads {read:8,} bytes in {seconds:6.3f} s "
            f"(manifest {manifest:,} bytes); hashing every shard (before): {old_read / 1e6:9,.1f} MB in {old_seconds:6.2f} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
