"""python -m bench.tokenizer: action tokenizer throughput on one core, with its baselines in the same run.

encode / decode     grids.tokenizer on N actions (SpatialVLA's published pre-training grid)
plain numpy         the same tokens written plainly: arccos, atan2, six np.searchsorted
per-row loop        Python loop per action with bisect (a naive baseline), on a subset
"""

from __future__ import annotations

import argparse
import bisect
import math
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from bench.common import add_smoke  # noqa: E402
from grids.grid import grid_from_gaussians  # noqa: E402
from grids.spherical import to_spherical  # noqa: E402
from grids.tokenizer import ActionTokenizer  # noqa: E402

SPATIALVLA_PLUS = {
    "x": (0.027242, 0.359492),
    "y": (0.025089, 0.358303),
    "z": (-0.103679, 0.389123),
    "theta": (1.873971, 0.779843),
    "phi": (0.087969, 1.692124),
    "r": (0.548087, 0.347498),
    "roll": (-0.016499, 0.380490),
    "pitch": (0.028463, 0.299122),
    "yaw": (-0.004914, 0.390230),
}


def best_of(f, repeat=5) -> float:
    best = math.inf
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def plain(grid, a):
    theta, phi, r = to_spherical(np.clip(a[:, :3], -1, 1))
    return [
        np.searchsorted(grid.edges[v][1:-1], x, side="right")
        for v, x in (("theta", theta), ("phi", phi), ("r", r), ("roll", a[:, 3]), ("pitch", a[:, 4]), ("yaw", a[:, 5]))
    ]


def per_row(grid, a):
    edges = {v: list(grid.edges[v][1:-1]) for v in grid.edges}
    out = []
    for x, y, z, ro, pi, ya, g in a.tolist():
        r = math.sqrt(x * x + y * y + z * z)
        th = math.acos(z / r) if r > 0 else math.pi / 2
        ph = math.atan2(y, x)
        out.append(
            [
                bisect.bisect_right(edges["theta"], th),
                bisect.bisect_right(edges["phi"], ph),
                bisect.bisect_right(edges["r"], r),
                bisect.bisect_right(edges["roll"], ro),
                bisect.bisect_right(edges["pitch"], pi),
                bisect.bisect_right(edges["yaw"], ya),
                g >= 0.5,
            ]
        )
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.tokenizer", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=2_000_000)
    add_smoke(p)
    args = p.parse_args(argv)
    if args.smoke:
        args.n = 20_000
    grid = grid_from_gaussians({k: {"mu": m, "sigma": s} for k, (m, s) in SPATIALVLA_PLUS.items()})
    tok = ActionTokenizer(grid)
    rng = np.random.default_rng(0)
    a = np.clip(rng.normal(0, 0.4, (args.n, 7)), -1, 1).astype(np.float32)
    tokens = tok.encode(a)
    rates = {
        "encode": args.n / best_of(lambda: tok.encode(a)),
        "decode": args.n / best_of(lambda: tok.decode(tokens)),
        "plain numpy (arccos, atan2, searchsorted)": args.n / best_of(lambda: plain(grid, a)),
        "per-row Python loop": min(args.n, 20_000) / best_of(lambda: per_row(grid, a[:20_000]), repeat=2),
    }
    print(f"{args.n:,} actions, float32, one thread (OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']})")
    for k, v in rates.items():
        print(f"  {k:45s} {v / 1e6:8.2f} M actions/s   {v / rates['encode']:6.3f} x encode")
    print(
        f"encode: {rates['encode'] / 1e6:.1f}M actions/s (goal >= 10M); "
        f"{rates['encode'] / rates['plain numpy (arccos, atan2, searchsorted)']:.1f}x the plain numpy version, "
        f"{rates['encode'] / rates['per-row Python loop']:.0f}x the per-row loop"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
