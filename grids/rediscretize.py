"""python -m grids.rediscretize: a grid for a new robot, and how to carry token embeddings over.

    python -m grids.rediscretize --base BASE.json --data OUT_OR_NPY --out NEW.json [--fit gaussian|empirical]
                                 [--map MAP.npz] [--retokenize OUT]
    python -m grids.rediscretize --base BASE.json --mixture my_robot.yaml [--data-dir RLDS_ROOT] --out NEW.json

Fits a new grid on the new robot's normalized actions with the base grid's bin counts; writes
an embedding-adaptation map (scipy sparse CSR, [new tokens, old tokens]): each new bin's centre
is interpolated between the old grid's neighbouring bin centres, per axis (phi wraps around),
so its embedding row starts as the weighted mix of old rows, the way SpatialVLA re-initializes
its action-token embeddings; gripper tokens map to themselves. `--retokenize OUT` rewrites
that export's action_tokens with the new grid (shards.rewrite, as pipeline.export does).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys

import numpy as np
import scipy.sparse as sp

from grids.grid import ROTATION, TRANSLATION, ActionGrid, GridFileError, empirical_grid, grid_from_gaussians
from sources.rlds import RLDSError
from storage import files

PERIODIC = {"phi": 2 * np.pi}


def axis_weights(
    new_centres: np.ndarray, old_centres: np.ndarray, period: float | None = None
) -> list[list[tuple[int, float]]]:
    """For each new centre: [(old index, weight)] of linear interpolation between the old centres
    that bracket it; outside the old centres, the nearest one (or, on a periodic axis, across the wrap)."""
    out = []
    n = len(old_centres)
    for c in new_centres:
        j = int(np.searchsorted(old_centres, c))
        if 0 < j < n:
            lo, hi = old_centres[j - 1], old_centres[j]
            t = (c - lo) / (hi - lo) if hi > lo else 0.0
            out.append([(j - 1, 1 - t), (j, t)])
        elif period:  # between the last centre and the first one plus a period
            lo, hi = old_centres[-1], old_centres[0] + period
            x = c if j == n else c + period
            t = (x - lo) / (hi - lo)
            out.append([(n - 1, 1 - t), (0, t)])
        else:
            out.append([(0 if j == 0 else n - 1, 1.0)])
    return out


def embedding_map(old: ActionGrid, new: ActionGrid) -> sp.csr_matrix:
    """[new tokens, old tokens], rows summing to 1."""
    if {v: old.counts[v] for v in old.counts} != {v: new.counts[v] for v in new.counts}:
        raise ValueError("the new grid must have the base grid's bin counts")
    rows, cols, vals = [], [], []

    def block(variables, offset):
        per_axis = [axis_weights(new.centres(v), old.centres(v), PERIODIC.get(v)) for v in variables]
        sizes = [new.counts[v] for v in variables]
        strides = [int(np.prod(sizes[i + 1 :])) for i in range(len(sizes))]
        for idx in itertools.product(*(range(s) for s in sizes)):
            r = offset + sum(i * s for i, s in zip(idx, strides))
            for combo in itertools.product(*(per_axis[a][i] for a, i in enumerate(idx))):
                w = float(np.prod([c[1] for c in combo]))
                if w > 0:
                    rows.append(r)
                    cols.append(offset + sum(c[0] * s for c, s in zip(combo, strides)))
                    vals.append(w)

    block(TRANSLATION, 0)
    block(ROTATION, old.translation_tokens)
    g0 = old.translation_tokens + old.rotation_tokens
    for g in range(old.counts["gripper"]):
        rows.append(g0 + g), cols.append(g0 + g), vals.append(1.0)
    m = sp.coo_matrix((vals, (rows, cols)), shape=(new.total_tokens, old.total_tokens)).tocsr()
    m.sum_duplicates()
    return m


def apply_embedding_map(matrix: sp.csr_matrix, old_embeddings: np.ndarray) -> np.ndarray:
    """New action-token embedding rows from the old ones: [new tokens, D]."""
    return np.asarray(matrix @ old_embeddings)


def fit_like(base: ActionGrid, actions: np.ndarray, weights: np.ndarray, fit: str) -> ActionGrid:
    from grids.fit import FitAccumulator, mixture_fit

    parts, step_weight = {}, {}
    for i, w in enumerate(np.unique(weights)):  # steps of equal weight form one part
        parts[f"w{i}"] = FitAccumulator().add(actions[weights == w], f"w{i}")
        step_weight[f"w{i}"] = float(w)
    mix = mixture_fit(parts, step_weight)
    counts = dict(base.counts)
    provenance = {"base_grid": base.provenance, "fit": fit, "steps": int(len(actions))}
    if fit == "empirical":
        return empirical_grid(mix.histograms, counts, gs_params=mix.gs_params, provenance=provenance)
    return grid_from_gaussians(mix.gs_params, counts, provenance=provenance)


def actions_from_rlds(args) -> tuple[np.ndarray, np.ndarray]:
    """Normalized actions of RLDS datasets (a registry or custom entry), weighted as the trainer samples
    them: each dataset's statistics (written to --work), then its action fields again, normalized.
    Nothing but action fields is read; episodes that cannot be used are counted and said."""
    from manifests.registry import resolve_mixture
    from manifests.weights import effective_weights
    from shards.manifest import STATISTICS_FILE
    from sources.episodes import dataset_episodes, is_problem
    from sources.rlds import open_dataset
    from sources.roots import data_root
    from storage.jsonio import write_json
    from transforms.normalize import normalize
    from transforms.statistics import DatasetStatistics

    mixture = resolve_mixture(args.mixture, args.datasets)

    def root_of(name: str) -> str:  # the mixture file's data_dir, else --data-dir
        if name in mixture.roots:
            return data_root(mixture.roots[name])[0]
        if args.data_dir is None:
            raise ValueError(f"dataset '{name}': the mixture gives it no data_dir; give --data-dir ROOT")
        return args.data_dir

    datasets = {name: open_dataset(root_of(name), cfg) for name, cfg in mixture.datasets.items()}

    def episodes(name, lost=None):
        for item in dataset_episodes(datasets[name], mixture.datasets[name], "train"):
            if not is_problem(item):
                yield item
            elif lost is not None:
                lost[name] = lost.get(name, 0) + item["episodes_lost"]

    stats, lost = {}, {}
    for name in datasets:
        acc = DatasetStatistics()
        for ep in episodes(name, lost):
            acc.add_episode(ep.action)
        if acc.action.flush().n == 0:
            raise ValueError(f"dataset '{name}': no usable episodes in {datasets[name].directory}")
        stats[name] = acc.extract()
    work = args.work or os.path.splitext(args.out)[0] + "_work"
    write_json(files.join(work, STATISTICS_FILE), stats)
    eff = effective_weights(mixture.weights, {n: stats[n]["num_transitions"] for n in mixture.weights})
    actions, weights = [], []
    for name in datasets:
        for ep in episodes(name):
            actions.append(normalize(ep.action, stats[name]["action"]))
            weights.append(np.full(ep.num_steps, eff[name] / stats[name]["num_transitions"]))
    if any(lost.values()):
        print(f"note: episodes that could not be used (left out): {lost}", file=sys.stderr)
    return np.concatenate(actions).astype(np.float64), np.concatenate(weights)


EXAMPLES = """examples (--base: the grid the model was trained with, OUT/grids/<mixture>.json of its export):
  python -m grids.rediscretize --base output/bridge/grids/bridge.json --data output/my_robot --out my_robot_grid.json
  python -m grids.rediscretize --base output/bridge/grids/bridge.json --data output/my_robot --out my_robot_grid.json --retokenize output/my_robot
  python -m grids.rediscretize --base output/bridge/grids/bridge.json --data actions.npy --out npy_grid.json --fit empirical
  python -m grids.rediscretize --base output/bridge/grids/bridge.json --mixture my_robot.yaml --out rlds_grid.json
(output/bridge: python -m pipeline.run --mixture bridge; output/my_robot: python -m pipeline.run --mixture
 my_robot.yaml --out output/my_robot, my_robot.yaml (its data_dir: my_data) written by python -m sources.convert
 from your own episodes; actions.npy: normalized actions [N, 7])
"""


def _output_file(path: str, flag: str) -> str | None:
    """An error for an output file path that names a directory (or sits where one cannot be made)."""
    local = files.local_path(path)
    if local is None:
        return None
    if os.path.isdir(local):
        return f"{flag} '{path}' is a directory; give a file name"
    parent = os.path.dirname(os.path.abspath(local))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        return f"{flag} '{path}': '{parent}' is a file, not a directory"
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m grids.rediscretize",
        description=__doc__.split("\n\n")[0],
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--base", required=True, help="the grid the model was trained with")
    p.add_argument(
        "--data",
        help="the new robot's data: an output directory of `python -m pipeline.run --mixture my_robot.yaml ...` "
        "(its shards) or a .npy of normalized actions [N, 7]",
    )
    p.add_argument(
        "--data-dir",
        help="or its RLDS data: the root of the datasets that a --mixture FILE gives no data_dir (a mixture file "
        "can hold the new robot's dataset_configs and data_dir), or of --datasets NAME=W (registry datasets)",
    )
    p.add_argument("--mixture", help="the RLDS data as a mixture name or file (with its data_dir roots)")
    p.add_argument("--datasets", help="with --data-dir: NAME=WEIGHT[,...] of registry datasets")
    p.add_argument("--work", help="with --data-dir: where the statistics go (default: beside --out)")
    p.add_argument("--out", required=True, help="where to write the new grid file")
    p.add_argument("--fit", choices=("gaussian", "empirical"), default="gaussian")
    p.add_argument("--map", help="where to write the embedding map (.npz, scipy sparse); default beside --out")
    p.add_argument("--retokenize", help="an output directory whose action_tokens to rewrite with the new grid")
    args = p.parse_args(argv)
    from grids.data import load_actions
    from grids.metrics import grid_metrics
    from manifests.registry import RegistryError
    from shards.manifest import ManifestError

    rlds = args.data_dir is not None or args.mixture is not None or args.datasets is not None
    if (args.data is None) == (not rlds):
        print("error: give --data (an output directory or .npy), or the RLDS data: --mixture FILE (its datasets' "
              "data_dir) and/or --data-dir ROOT with --mixture/--datasets", file=sys.stderr)  # fmt: skip
        return 2
    map_path = args.map or args.out.rsplit(".json", 1)[0] + "_embedding_map.npz"
    for path, flag in ((args.out, "--out"), (map_path, "--map")):
        problem = _output_file(path, flag)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
    try:
        base = ActionGrid.load(args.base)
        if args.data:
            actions, weights = load_actions(args.data)
        else:
            actions, weights = actions_from_rlds(args)
        new = fit_like(base, actions, weights, args.fit)
        if args.data and not args.data.endswith(".npy"):  # an export: scored as the run scores its grid
            from grids.data import export_fit
            from grids.metrics import fit_metrics

            scored = export_fit(args.data)
            new.metrics = fit_metrics(new, scored.fit, scored.datasets, scored.steps)
            actions, weights = scored.fit.sample_actions, scored.fit.sample_weight
        else:
            new.metrics = grid_metrics(new, actions, weights)
        files.write_bytes(args.out, new.dumps().encode())
        with files.open_file(map_path, "wb") as f:
            sp.save_npz(f, embedding_map(base, new))
        before = grid_metrics(base, actions, weights)["token_entropy"]
    except (GridFileError, RegistryError, ManifestError, ValueError, OSError, RLDSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"new grid: {args.out} (token entropy on the new data {new.metrics['token_entropy']:.3f}, "
        f"base grid's {before:.3f}); embedding map: {map_path}"
    )
    if args.retokenize:
        from grids.tokenizer import ActionTokenizer
        from shards.manifest import verify_manifest
        from shards.rewrite import commit_rewrite, plan_rewrite, rewrite_shard

        try:
            manifest = verify_manifest(args.retokenize)
            jobs = plan_rewrite(args.retokenize, manifest, new.to_json(), None)
            encode = ActionTokenizer(new).encode
            for job in jobs:
                rewrite_shard(job, encode)
            commit_rewrite(args.retokenize, manifest, jobs, new.to_json(), None)
        except (ManifestError, OSError) as e:
            print(f"error: --retokenize: {e}", file=sys.stderr)
            return 2
        print(f"re-tokenized {args.retokenize} with the new grid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
