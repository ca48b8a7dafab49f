"""python -m bench.stats: the statistics pass against its baseline and its floor, at 1x and 4x.

floor      read every byte of the datasets' train shards, nothing else
pass       this pipeline's statistics pass in one process: action fields only parsed, no image
           decoded, mergeable accumulators (the same functions the Beam job runs)
beam       the same through `python -m pipeline.run --stages stats` (DirectRunner, includes its start-up)
baseline   TFDS as_dataset over whole episodes (every feature decoded), a Python loop,
           np.quantile over the concatenated actions: the way OpenVLA computes its statistics
Each runs in a fresh process and is timed after its imports; peak RSS is that process's.
"""

from __future__ import annotations

import argparse

from bench.common import DATASETS, add_smoke, ensure, measure, table

FLOOR = """
import glob, time
t0 = time.perf_counter()
n = 0
for f in sorted(glob.glob(glob.escape("{data}") + "/*/*/*.tfrecord-*")):  # the path literally
    if "-train." in f:
        with open(f, "rb") as fh:
            while True:
                b = fh.read(1 << 23)
                if not b: break
                n += len(b)
result["bytes"] = n
result["seconds"] = time.perf_counter() - t0
"""

PASS = """
from manifests.registry import load_registry
from sources.episodes import dataset_episodes, is_problem
from sources.rlds import open_dataset
from transforms.statistics import DatasetStatistics
import time, tensorflow, tensorflow_datasets
reg = load_registry()
t0 = time.perf_counter()
steps = 0
for name in {names}:
    cfg = reg.datasets[name]
    acc = DatasetStatistics()
    for ep in dataset_episodes(open_dataset("{data}", cfg), cfg, "train", proprio=True):
        if not is_problem(ep):
            acc.add_episode(ep.action, ep.proprio)
    steps += acc.extract()["num_transitions"]
result["steps"] = steps
result["seconds"] = time.perf_counter() - t0
"""

BEAM = """
import tempfile, time
import apache_beam, tensorflow, tensorflow_datasets
from pipeline.run import main
t0 = time.perf_counter()
with tempfile.TemporaryDirectory() as out:
    assert main(["--datasets", ",".join(n + "=1" for n in {names}), "--data-dir", "{data}", "--out", out,
                 "--stages", "stats"]) == 0
result["seconds"] = time.perf_counter() - t0
"""

BASELINE = """
import numpy as np, tensorflow_datasets as tfds
from manifests.registry import load_registry
from sources.rlds import open_dataset
from transforms.episode import RawEpisode
from transforms.standardize import standardize
import time, tensorflow
reg = load_registry()
t0 = time.perf_counter()
steps = 0
def flat(d, prefix=""):
    out = {{}}
    for k, v in d.items():
        out.update(flat(v, prefix + k + "/") if isinstance(v, dict) else {{prefix + k: v}})
    return out
def stored_bytes(features):
    # Tensors stored encoded (kuka's zlib state) come as their stored bytes, as the raw columns that
    # standardize() takes (it decodes them): TFDS would decode them itself, and the decoded floats
    # are not what standardize() expects (zlib.decompress of them fails)
    out = {{}}
    for k, f in features.items():
        if isinstance(f, tfds.features.FeaturesDict):
            out[k] = stored_bytes(f)
        elif str(getattr(getattr(f, "_encoding", None), "value", "none")) != "none":
            out[k] = tfds.decode.SkipDecoding()
    return {{k: v for k, v in out.items() if v != {{}}}}
for name in {names}:
    cfg = reg.datasets[name]
    builder = tfds.builder_from_directory(open_dataset("{data}", cfg).directory)
    decoders = {{"steps": stored_bytes(builder.info.features["steps"].feature)}}
    actions = []
    for i, ep in enumerate(tfds.as_numpy(builder.as_dataset(split="train", decoders=decoders))):
        steps_ = [flat(s) for s in ep["steps"]]  # RLDS steps are a nested dataset: a Python loop over them
        columns = {{k: np.array([s[k] for s in steps_], dtype=object) if isinstance(steps_[0][k], bytes)
                   else np.stack([s[k] for s in steps_]) for k in steps_[0]}}  # bytes kept whole (no NUL stripping)
        actions.append(standardize(RawEpisode(name, str(i), "", columns), cfg).action)
    a = np.concatenate(actions).astype(np.float64)
    stats = {{"mean": a.mean(0), "std": a.std(0), "min": a.min(0), "max": a.max(0),
             "q01": np.quantile(a, 0.01, axis=0), "q99": np.quantile(a, 0.99, axis=0)}}
    steps += len(a)
result["steps"] = steps
result["seconds"] = time.perf_counter() - t0
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.stats", description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", type=int, default=12, help="train episodes per dataset at 1x")
    add_smoke(p)
    args = p.parse_args(argv)
    if args.smoke:
        args.episodes = 1
    rows, results = [], {}
    for factor in (1, 4):
        data = ensure(args.episodes * factor)
        names = repr(DATASETS)
        r = {
            k: measure(code.format(data=data, names=names))
            for k, code in (("floor", FLOOR), ("pass", PASS), ("beam", BEAM), ("baseline", BASELINE))
        }
        results[factor] = r
        mb = r["floor"]["bytes"] / 1e6
        for k in ("floor", "pass", "beam", "baseline"):
            rows.append(
                [
                    f"{factor}x",
                    f"{mb:.0f} MB",
                    k,
                    f"{r[k]['seconds']:.2f}",
                    f"{r[k]['peak_rss_mb']:.0f}",
                    f"{r[k]['seconds'] / r['floor']['seconds']:.2f}",
                ]
            )
    print(f"datasets: {', '.join(DATASETS)}; {args.episodes} and {4 * args.episodes} train episodes each")
    print(table(rows, ["size", "shards", "what", "seconds", "peak RSS MB", "x floor"]))
    r4, r1 = results[4], results[1]
    print(
        f"at 4x: pass is {r4['baseline']['seconds'] / r4['pass']['seconds']:.1f}x faster than the baseline "
        f"(goal >= 10x) and {r4['pass']['seconds'] / r4['floor']['seconds']:.2f}x the floor (goal <= 2x); "
        f"beam job {r4['baseline']['seconds'] / r4['beam']['seconds']:.1f}x faster than the baseline, "
        f"{r4['beam']['seconds'] / r4['floor']['seconds']:.2f}x the floor"
    )

    def marginal(k):  # seconds per extra byte between 1x and 4x, as a multiple of the floor's
        return (r4[k]["seconds"] - r1[k]["seconds"]) / (r4["floor"]["seconds"] - r1["floor"]["seconds"])

    print(
        f"marginal cost (4x - 1x) as a multiple of the floor's: pass {marginal('pass'):.2f}, "
        f"beam {marginal('beam'):.2f}, baseline {marginal('baseline'):.2f}"
    )
    print(
        f"peak memory 4x / 1x: pass {r4['pass']['peak_rss_mb'] / r1['pass']['peak_rss_mb']:.2f}, "
        f"beam {r4['beam']['peak_rss_mb'] / r1['beam']['peak_rss_mb']:.2f}, "
        f"baseline {r4['baseline']['peak_rss_mb'] / r1['baseline']['peak_rss_mb']:.2f} (goal <= 1.2)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
