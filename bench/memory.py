"""python -m bench.memory: peak RSS of a full run (stats, grids, export) at 1x and 4x the corpus.

Memory is bounded by a shard or a batch, never by a dataset: the ratio should stay near 1.
"""

from __future__ import annotations

import argparse

from bench.common import DATASETS, add_smoke, ensure, measure

RUN = """
import tempfile, time
from pipeline.run import main
with tempfile.TemporaryDirectory() as out:
    t0 = time.perf_counter()
    assert main(["--datasets", ",".join(n + "=1" for n in {names}), "--data-dir", "{data}", "--out", out,
                 "--no-depth", "--image-size", "224"]) == 0
    result["seconds"] = time.perf_counter() - t0
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\\n\\n")[0])
    p.add_argument("--episodes", type=int, default=12, help="train episodes per dataset at 1x")
    add_smoke(p)
    args = p.parse_args(argv)
    if args.smoke:
        args.episodes = 1
    r = {f: measure(RUN.format(data=ensure(args.episodes * f), names=repr(DATASETS))) for f in (1, 4)}
    for f in (1, 4):
        print(
            f"  {f}x ({args.episodes * f} episodes x {len(DATASETS)} datasets): {r[f]['seconds']:6.1f} s, "
            f"peak RSS {r[f]['peak_rss_mb']:6.0f} MB"
        )
    print(f"peak RSS 4x / 1x: {r[4]['peak_rss_mb'] / r[1]['peak_rss_mb']:.2f} (goal <= 1.2)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
