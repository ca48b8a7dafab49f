"""The main job's options: the command line, parsed and checked into one typed, frozen object.

Everything after `--` is kept as Beam pipeline options. Bad values are a UsageError: one line,
exit code 2, nothing written.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass

from manifests.vocabulary import DEPTH_BACKENDS, GRID_FITS, NORMALIZATIONS, STAGES

MIN_IMAGE_SIZE = 8
MAX_IMAGE_SIZE = 4096


class UsageError(Exception):
    """Bad command-line input: reported as one line, exit code 2, nothing written."""


@dataclass(frozen=True)
class RunOptions:
    mixture: str | None = None  # a named mixture or a mixture file
    datasets: str | None = None  # or an inline mixture NAME=WEIGHT,...
    data_dir: str | None = None  # None: the built-in sample corpus
    out: str | None = None  # None: output/<mixture>
    split: str = "train"
    max_episodes: int | None = None
    stages: tuple[str, ...] = STAGES  # in run order, depth removed by --no-depth
    image_size: int = 224
    depth_model: str | None = None
    depth_backend: str = "transformers"
    grid_fit: str = "gaussian"
    grid_exclude: tuple[str, ...] | None = None  # None: the registry's exclusion list
    shard_mb: float = 256.0
    normalization: str = "bounds_q99"
    text_tokenizer: str | None = None
    seed: int = 0
    strict: bool = False
    dry_run: bool = False
    no_depth: bool = False
    grid: str | None = None  # a grid file to tokenize with (the grids stage is skipped)
    overwrite: bool = False  # replace an export in --out made from other data, another mixture or grid
    cache: str | None = None  # the frame cache's directory (None: OUT/.cache; "none": no frame cache)
    runner: str = "direct"  # direct | dask
    dask_address: str | None = None  # a dask scheduler; None with --runner dask: a local cluster
    workers: int | None = None  # processes of that local cluster (default: the machine's cores)
    beam_args: tuple[str, ...] = ()

    @property
    def shard_bytes(self) -> int:
        return int(self.shard_mb * (1 << 20))


EXAMPLES = """examples:
  python -m pipeline.run --mixture bridge --no-depth                  # the built-in sample corpus -> output/bridge
  python -m pipeline.run --mixture bridge --data-dir /data/oxe --out output/bridge_oxe --no-depth   # a local OXE mirror
  python -m pipeline.run --mixture oxe_magic_soup --dry-run           # the resolved plan, as JSON
  python -m pipeline.run --mixture my_robot.yaml --out output/my_robot --no-depth   # a mixture file, its data_dir
  python -m pipeline.run --datasets bridge_orig=1.0,kuka=0.5 --max-episodes 2 --no-depth --out output/two
  python -m pipeline.run --mixture bridge --no-depth --out output/bridge_2 -- --direct_running_mode=multi_processing --direct_num_workers=2
(my_robot.yaml: the mixture file `python -m sources.convert` writes for your own episodes; --data-dir also takes
gs://gresearch/robotics. Arguments after `--` are Beam pipeline options, e.g. on Dataflow
`-- --runner=DataflowRunner --project=P --region=R --temp_location=gs://B/tmp`.)
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipeline.run",
        description="Turn RLDS robot episodes into tokenized SpatialVLA training shards "
        "(statistics -> action grids -> depth -> Arrow export).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--mixture", help="a named mixture (e.g. oxe_magic_soup) or a mixture YAML file")
    what.add_argument("--datasets", help="an inline mixture: NAME=WEIGHT[,NAME=WEIGHT...]")
    p.add_argument(
        "--data-dir",
        help="RLDS data root (<root>/<dataset>/<version>/), local or a URL (gs://...); "
        "default: the built-in sample corpus",
    )
    p.add_argument("--out", help="output directory, local or a URL (default: ./output/<mixture>)")
    p.add_argument(
        "--split",
        default="train",
        help="TFDS split spec: train, train[:10%%], train[5:20], train+val (default: %(default)s)",
    )
    p.add_argument("--max-episodes", type=int, help="read at most N episodes per dataset")
    p.add_argument(
        "--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)} (default: all)"
    )
    p.add_argument(
        "--image-size", type=int, default=224, help="side of the exported square images, pixels (default: %(default)s)"
    )
    depth = p.add_mutually_exclusive_group()
    depth.add_argument("--depth-model", help="local ZoeDepth checkpoint directory (default: the HF cache)")
    depth.add_argument("--no-depth", action="store_true", help="skip the depth stage")
    p.add_argument(
        "--depth-backend",
        choices=tuple(DEPTH_BACKENDS),
        default="transformers",
        help="ZoeDepth implementation: transformers' or the original through torch.hub (default: %(default)s)",
    )
    p.add_argument(
        "--grid-fit",
        choices=tuple(GRID_FITS),
        default="gaussian",
        help="grid edges from fitted Gaussians (SpatialVLA) or the data's own quantiles (default: %(default)s)",
    )
    p.add_argument(
        "--grid-exclude",
        help="comma-separated datasets left out of the grid fit, or 'none' "
        "(default: the registry's list, SpatialVLA's)",
    )
    p.add_argument(
        "--shard-mb", type=float, default=256, help="target size of an output shard, MB (default: %(default)s)"
    )
    p.add_argument(
        "--normalization",
        choices=tuple(NORMALIZATIONS),
        default="bounds_q99",
        help="action normalization mode (default: %(default)s)",
    )
    p.add_argument(
        "--text-tokenizer",
        help="a Hugging Face tokenizer directory: adds input_ids of the instruction "
        "and <ACTION00000>... tokens for the action tokens, as SpatialVLA does",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the pipeline's random choices (DROID's camera per episode, the grid-metrics sample); "
        "same seed: same bytes (default: %(default)s)",
    )
    p.add_argument(
        "--grid",
        help="tokenize with this grid file (e.g. from grids.rediscretize) instead of fitting one; "
        "recorded in the manifest, and kept by later runs on the same --out",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the export in --out even when it was made from other data roots, another mixture "
        "or a given grid (refused otherwise)",
    )
    p.add_argument(
        "--cache",
        help="directory of the frame cache (encoded images and depth per dataset, episode and settings), "
        "shared by the outputs that name it; 'none': keep no frames (default: OUT/.cache)",
    )
    p.add_argument("--strict", action="store_true", help="any dropped episode or corrupt input fails the run")
    p.add_argument("--dry-run", action="store_true", help="print the resolved plan as JSON and exit")
    engine = p.add_argument_group("engine (or any Beam pipeline options after `--`)")
    engine.add_argument(
        "--runner",
        choices=("direct", "dask"),
        default="direct",
        help="Beam's DirectRunner in this process, or Beam's DaskRunner on dask.distributed (default: %(default)s)",
    )
    engine.add_argument(
        "--dask-address",
        help="with --runner dask: the scheduler, tcp://HOST:8786 (default: a local cluster started for the run)",
    )
    engine.add_argument(
        "--workers",
        type=int,
        help="with --runner dask and no --dask-address: local worker processes (default: one per core)",
    )
    return p


def parse_stages(spec: str, no_depth: bool) -> tuple[str, ...]:
    stages = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        raise UsageError(
            f"--stages: unknown stage '{unknown[0] if unknown else spec}' (choose from {','.join(STAGES)})"
        )
    if set(stages) == {"depth"}:
        raise UsageError("--stages depth: depth maps are computed while exporting; use --stages depth,export")
    return tuple(s for s in STAGES if s in stages and not (no_depth and s == "depth"))


def parse_options(argv: list[str]) -> RunOptions:
    """argv (without the program name) -> RunOptions; argparse exits 2 on malformed flags itself."""
    beam_args: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, beam_args = argv[:i], argv[i + 1 :]
    a = build_parser().parse_args(argv)
    if a.max_episodes is not None and a.max_episodes < 1:
        raise UsageError(f"--max-episodes must be a positive number, got {a.max_episodes}")
    if not MIN_IMAGE_SIZE <= a.image_size <= MAX_IMAGE_SIZE:
        raise UsageError(
            f"--image-size must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} pixels, got {a.image_size}"
        )
    if not (math.isfinite(a.shard_mb) and a.shard_mb > 0):
        raise UsageError(f"--shard-mb must be a positive number of megabytes, got {a.shard_mb}")
    if (a.dask_address or a.workers) and a.runner != "dask":
        raise UsageError("--dask-address and --workers need --runner dask")
    if a.workers is not None and a.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {a.workers}")
    for flag, path in (("--text-tokenizer", a.text_tokenizer), ("--depth-model", a.depth_model)):
        if path is not None and "://" not in path and not os.path.isdir(path):  # a directory, given or not at all
            what = "a file" if os.path.isfile(path) else "not there" if not os.path.exists(path) else "not a directory"
            raise UsageError(f"{flag} '{path}' is {what}: give the directory that holds it (e.g. its config.json)")
    exclude = None
    if a.grid_exclude is not None:
        exclude = tuple(s.strip() for s in a.grid_exclude.split(",") if s.strip() and s.strip() != "none")
    return RunOptions(
        mixture=a.mixture,
        datasets=a.datasets,
        data_dir=a.data_dir,
        out=a.out,
        split=a.split,
        max_episodes=a.max_episodes,
        stages=parse_stages(a.stages, a.no_depth),
        image_size=a.image_size,
        depth_model=a.depth_model,
        depth_backend=a.depth_backend,
        grid_fit=a.grid_fit,
        grid_exclude=exclude,
        shard_mb=a.shard_mb,
        normalization=a.normalization,
        text_tokenizer=a.text_tokenizer,
        seed=a.seed,
        strict=a.strict,
        dry_run=a.dry_run,
        no_depth=a.no_depth,
        grid=a.grid,
        overwrite=a.overwrite,
        cache=a.cache,
        runner=a.runner,
        dask_address=a.dask_address,
        workers=a.workers,
        beam_args=tuple(beam_args),
    )
