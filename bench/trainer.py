"""python -m bench.trainer: SpatialVLA's training dataset (shards.spatialvla) on one core, with
augmentation and the processor stand-in, against the plain reader and JPEG decode alone, in one run.

decode            PIL decode of the export's JPEGs to RGB arrays, in a loop: the limit of any reader
decode + augment  the same frames decoded and augmented (shards.augment): the limit with augmentation
reader            shards.reader.MixtureDataset as the dataset drives it (disjoint, chunks of 4, its columns),
                  images decoded
dataset           shards.spatialvla.SpatialVLADataset, processor stand-in, augmentation off
dataset + aug     the same with augmentation, as it trains

The export: python -m pipeline.run on the sample corpus (bench.common.DATASETS; or --data-dir and
--datasets, e.g. the real Bridge slice), 224x224 JPEG, no depth, built once. Each rate is measured in a fresh process with one thread (OMP and torch), after a warm-up
(shards opened, shuffle buffer filled); per core = samples per CPU-second of that process, the best of
--repeat runs taken in turn (a shared machine's noise only ever slows a run down). The dataset rows also
time the processor stand-in's calls, to tell the dataset's own share.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys

from bench.common import BENCH_DIR, DATASETS, ROOT, add_smoke, ensure, measure, table
from storage.jsonio import read_json

WEIGHTS = {"bridge_orig": 1.0, "fractal20220817_data": 0.5, "kuka": 0.8, "droid": 0.3}

SETUP = """
import io, os, time
import numpy as np
import torch
torch.set_num_threads(1)
out, n, warm = {out!r}, {n}, {warm}

def timed(step):
    for _ in range(warm):
        step()
    c0, t0 = os.times(), time.perf_counter()
    for _ in range(n):
        step()
    c1 = os.times()
    result["seconds"] = time.perf_counter() - t0
    result["cpu_seconds"] = (c1.user + c1.system) - (c0.user + c0.system)
"""

FRAMES = """
import pyarrow as pa
from PIL import Image
from shards.manifest import load_manifest, shard_path
manifest = load_manifest(out)
jpegs = []
for d in manifest["datasets"].values():
    for s in d["shards"]:
        jpegs += pa.ipc.open_file(pa.memory_map(shard_path(out, s))).read_all().column("image").to_pylist()
frames = iter(np.random.default_rng(0).permutation(len(jpegs)).tolist() * (1 + (n + warm) // len(jpegs)))
"""

DECODE = """
timed(lambda: np.asarray(Image.open(io.BytesIO(jpegs[next(frames)])).convert("RGB")))
"""

AUGMENT = """
from shards.augment import augment, draw_params
rng = np.random.default_rng(0)
def step():
    im = Image.open(io.BytesIO(jpegs[next(frames)])).convert("RGB")
    np.asarray(augment(im, draw_params(rng, im.height, im.width), 224))
timed(step)
"""

READER = """
from shards.reader import MixtureDataset
from shards.spatialvla import COLUMNS
ds = MixtureDataset(out, mode="disjoint", shuffle_buffer={buffer}, seed=0, chunk=4, decode_images=True,
                    skip_unlabeled=True, columns=COLUMNS, verify=False)
it = iter(ds)
timed(lambda: next(it))
"""

DATASET = """
from shards.spatialvla import SpatialVLADataset
from shards.standin_processor import StandInProcessor

class Timed(StandInProcessor):  # the processor's CPU time, to tell the dataset's own share
    spent = 0.0
    def __call__(self, *args, **kwargs):
        t = time.process_time()
        out = super().__call__(*args, **kwargs)
        Timed.spent += time.process_time() - t
        return out

ds = SpatialVLADataset(out, None, {mixture!r}, shuffle_buffer_size={buffer}, action_forward_steps=3,
                       fix_raw_length=10**9, augment={augment}, verify=False)
ds.vla_processor = Timed()
it = iter(ds)
for _ in range(warm):
    next(it)
Timed.spent, warm = 0.0, 0
timed(lambda: next(it))
result["processor_cpu_seconds"] = Timed.spent
"""


def export(episodes: int, data_dir: str | None, names: list[str]) -> str:
    """The bench export (built once): RLDS data (default: the sample corpus) through the whole pipeline,
    without depth."""
    corpus = os.path.abspath(data_dir) if data_dir else str(ensure(episodes))
    tag = f"{episodes}" if data_dir is None else hashlib.sha256(f"{corpus} {names}".encode()).hexdigest()[:8]
    out = BENCH_DIR / f"trainer-export-{tag}"
    if not (out / "manifest.json").exists():
        datasets = ",".join(f"{n}={WEIGHTS.get(n, 1.0)}" for n in names)
        cmd = [sys.executable, "-m", "pipeline.run", "--datasets", datasets, "--data-dir", corpus]
        subprocess.run(cmd + ["--out", str(out), "--no-depth", "--image-size", "224"], cwd=ROOT, check=True)
    return str(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.trainer", description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", type=int, default=50, help="sample corpus episodes per dataset")
    p.add_argument("--data-dir", help="RLDS data root to export instead of the sample corpus")
    p.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated datasets to export")
    p.add_argument("--n", type=int, default=3000, help="samples timed per row")
    p.add_argument("--buffer", type=int, default=1000, help="shuffle buffer, steps")
    p.add_argument("--repeat", type=int, default=3, help="runs per row, the best kept")
    add_smoke(p)
    args = p.parse_args(argv)
    if args.smoke:
        args.episodes, args.n, args.buffer, args.repeat = 1, 300, 50, 1  # n: os.times() ticks 10 ms
    names = args.datasets.split(",")
    out = export(args.episodes, args.data_dir, names)
    mixture = read_json(os.path.join(out, "manifest.json"))["mixture"]
    setup = SETUP.format(out=out, n=args.n, warm=args.buffer + 200)
    rows = {
        "decode": setup + FRAMES + DECODE,
        "decode + augment": setup + FRAMES + AUGMENT,
        "reader": setup + READER.format(buffer=args.buffer),
        "dataset": setup + DATASET.format(mixture=mixture, buffer=args.buffer, augment=False),
        "dataset + aug": setup + DATASET.format(mixture=mixture, buffer=args.buffer, augment=True),
    }
    rates, processor = {}, {}
    for _ in range(args.repeat):
        for name, code in rows.items():
            r = measure(code)
            if name not in rates or args.n / r["cpu_seconds"] > rates[name][0]:
                rates[name] = (args.n / r["cpu_seconds"], args.n / r["seconds"], r["peak_rss_mb"])
            if "processor_cpu_seconds" in r:
                own = args.n / (r["cpu_seconds"] - r["processor_cpu_seconds"])
                processor[name] = max(processor.get(name, 0.0), own)
    rates["dataset, processor's share removed"] = (processor["dataset"], float("nan"), float("nan"))
    print(f"{args.n} samples per row from {out} ({', '.join(names)}), 224x224 JPEG, one thread")
    decode, augmented = rates["decode"][0], rates["decode + augment"][0]
    print(
        table(
            [
                [name, f"{cpu:,.0f}", f"{wall:,.0f}", f"{cpu / decode:.2f}", f"{cpu / augmented:.2f}", f"{rss:.0f}"]
                for name, (cpu, wall, rss) in rates.items()
            ],
            ["samples", "per CPU-s", "per s", "x decode", "x decode+aug", "peak MB"],
        )
    )
    aug = rates["dataset + aug"][0]
    print(f"dataset + aug: {aug:,.0f} samples per CPU-second (goal >= 200), {aug / augmented:.2f} x decode + augment")
    print(
        f"dataset: {processor['dataset'] / decode:.2f} x plain JPEG decode without the processor's share, "
        f"{rates['dataset'][0] / decode:.2f} x with it (goal >= 0.80)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
