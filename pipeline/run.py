"""python -m pipeline.run: the main job (statistics, grids, depth, export) over a mixture.

    python -m pipeline.run --mixture oxe_magic_soup                 # on the built-in sample corpus
    python -m pipeline.run --mixture bridge --data-dir /data/oxe     # on a local OXE mirror
    python -m pipeline.run --mixture oxe_magic_soup --dry-run        # the resolved plan as JSON
    python -m pipeline.run --mixture my_mix.yaml -- --runner=DataflowRunner --project=...

Everything after `--` is passed to Beam as pipeline options.
"""
from __future__ import annotations

import argparse
import json
import sys

from manifests.registry import RegistryError, resolve_mixture

STAGES = ("stats", "grids", "depth", "export")


class UsageError(Exception):
    """Bad command-line input: reported as one line, exit code 2, nothing written."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipeline.run",
        description="Turn RLDS robot episodes into tokenized SpatialVLA training shards "
                    "(statistics -> action grids -> depth -> Arrow export).",
        epilog="Arguments after `--` are Beam pipeline options, e.g. "
               "`-- --runner=DataflowRunner --project=P --region=R --temp_location=gs://B/tmp`.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--mixture", help="a named mixture (e.g. oxe_magic_soup) or a mixture YAML file")
    what.add_argument("--datasets", help="an inline mixture: NAME=WEIGHT[,NAME=WEIGHT...]")
    p.add_argument("--data-dir", help="RLDS data root (<root>/<dataset>/<version>/), local or gs://; "
                                      "default: the built-in sample corpus")
    p.add_argument("--out", help="output directory (default: ./output/<mixture>)")
    p.add_argument("--split", default="train", help="TFDS split spec: train, train[:10%%], train[5:20], train+val")
    p.add_argument("--max-episodes", type=int, help="read at most N episodes per dataset")
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    p.add_argument("--image-size", type=int, default=224, help="side of the exported square images, pixels")
    depth = p.add_mutually_exclusive_group()
    depth.add_argument("--depth-model", help="local ZoeDepth checkpoint directory (default: the HF cache)")
    depth.add_argument("--no-depth", action="store_true", help="skip the depth stage")
    p.add_argument("--depth-backend", choices=("transformers", "hub"), default="transformers",
                   help="ZoeDepth implementation: transformers' or the original through torch.hub")
    p.add_argument("--grid-fit", choices=("gaussian", "empirical"), default="gaussian",
                   help="grid edges from fitted Gaussians (SpatialVLA) or the data's own quantiles")
    p.add_argument("--grid-exclude", help="comma-separated datasets left out of the grid fit, or 'none' "
                                          "(default: the registry's list, SpatialVLA's)")
    p.add_argument("--shard-mb", type=float, default=256, help="target size of an output shard, MB")
    p.add_argument("--normalization", choices=("bounds_q99", "bounds", "normal"), default="bounds_q99",
                   help="action normalization mode")
    p.add_argument("--text-tokenizer", help="a Hugging Face tokenizer directory: adds input_ids of the instruction "
                                            "and <ACTION00000>... tokens for the action tokens, as SpatialVLA does")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (same seed: same bytes)")
    p.add_argument("--strict", action="store_true", help="any dropped episode or corrupt input fails the run")
    p.add_argument("--dry-run", action="store_true", help="print the resolved plan as JSON and exit")
    return p


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    if "--" in argv:
        i = argv.index("--")
        argv, beam_args = argv[:i], argv[i + 1:]
    else:
        beam_args = []
    return build_parser().parse_args(argv), beam_args


def resolve_stages(spec: str, no_depth: bool) -> list[str]:
    stages = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        raise UsageError(f"--stages: unknown stage '{unknown[0] if unknown else spec}' (choose from {','.join(STAGES)})")
    return [s for s in STAGES if s in stages and not (no_depth and s == "depth")]


def default_data_dir() -> str:
    from pipeline.sample import default_corpus_dir

    return str(default_corpus_dir())


def dataset_plan(mixture, data_dir: str, split: str) -> list[dict]:
    from pipeline.rlds import RLDSError, find_dataset_dir, RLDSDataset

    rows = []
    for name, weight in mixture.weights.items():
        cfg = mixture.datasets[name]
        path = find_dataset_dir(data_dir, cfg.name, cfg.version, cfg.rlds_dirs)
        row = {"name": name, "version": cfg.version, "weight": weight, "found": path is not None,
               "path": path or f"{data_dir.rstrip('/')}/{cfg.rlds_dirs[0]}/{cfg.version}",
               "grid_fit_excluded": cfg.grid_fit_excluded}
        if path:
            try:
                ds = RLDSDataset(path, name)
                row["episodes"] = sum(s.num_episodes for s in ds.plan(split))
                row["splits"] = ds.splits
            except RLDSError as e:
                row["found"], row["error"] = False, str(e)
        rows.append(row)
    return rows


def make_plan(args, beam_args: list[str]) -> dict:
    mixture = resolve_mixture(args.mixture, args.datasets)
    data_dir = args.data_dir or default_data_dir()
    return {
        "mixture": mixture.name,
        "mixture_source": mixture.source,
        "data_dir": data_dir,
        "sample_corpus": args.data_dir is None,
        "split": args.split,
        "out": args.out or f"output/{mixture.name}",
        "stages": resolve_stages(args.stages, args.no_depth),
        "datasets": dataset_plan(mixture, data_dir, args.split),
        "beam_options": beam_args,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args, beam_args = parse_args(argv)
    try:
        if args.dry_run:
            print(json.dumps(make_plan(args, beam_args), indent=2))
            return 0
        from pipeline.stages import run_pipeline

        return run_pipeline(args, beam_args)
    except (UsageError, RegistryError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
