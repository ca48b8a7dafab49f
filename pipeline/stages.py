"""The main job: statistics -> grids -> (depth) -> export, each a Beam pipeline.

The driver plans, runs each stage's pipeline under the user's Beam options, and collects
what the workers wrote through Beam's file systems (so the same code runs on Dataflow,
Flink or Spark). Logic lives in transforms/ and grids/; the Beam wiring in beam_jobs/.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field

from manifests.registry import Mixture, resolve_mixture
from pipeline.report import Report
from pipeline.rlds import RLDSDataset, RLDSError, open_dataset

TOOL_VERSION = "0.1.0"


class RunError(Exception):
    """Input the run cannot proceed with: one line, exit code 2, nothing partial written."""


class StrictError(Exception):
    """--strict and the input has problems: one line, exit code 1, report.json says what they are."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def dumps(obj) -> str:
    """Deterministic JSON: sorted keys, fixed indentation, newline at the end."""
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def write_json(path: str, obj) -> None:
    """Write through Beam's file systems (local or gs://), to a temporary name then renamed."""
    from apache_beam.io.filesystems import FileSystems

    tmp = f"{path}.tmp-{os.getpid()}"
    with FileSystems.create(tmp) as f:
        f.write(dumps(obj).encode())
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])


def read_json(path: str):
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path) as f:
        return json.loads(f.read().decode())


def read_lines(path: str) -> list:
    """JSON lines that a pipeline wrote with WriteToText, read back in the driver."""
    from apache_beam.io.filesystems import FileSystems

    if not FileSystems.exists(path):
        return []
    with FileSystems.open(path) as f:
        return [json.loads(line) for line in f.read().decode().splitlines() if line.strip()]


def write_lines(pcoll, path: str, label: str):
    import apache_beam as beam

    return (pcoll
            | f"{label}ToJson" >> beam.Map(lambda x: json.dumps(x, sort_keys=True))
            | f"{label}Write" >> beam.io.WriteToText(path, shard_name_template=""))


def sha256_of(obj) -> str:
    return hashlib.sha256(dumps(obj).encode()).hexdigest()


@dataclass
class RunContext:
    args: object
    beam_args: list[str]
    mixture: Mixture
    data_dir: str
    out: str
    datasets: dict[str, RLDSDataset]
    report: Report = field(default_factory=Report)

    @property
    def configs(self) -> dict:
        return self.mixture.datasets

    def path(self, *parts: str) -> str:
        from apache_beam.io.filesystems import FileSystems

        return FileSystems.join(self.out, *parts)

    def pipeline_options(self):
        from apache_beam.options.pipeline_options import PipelineOptions

        return PipelineOptions(self.beam_args or ["--runner=DirectRunner"])


# ---------------------------------------------------------------- set-up checks

def check_out_dir(out: str) -> None:
    """An output path that is a file, or a local directory that cannot be written: refuse early."""
    if "://" in out:
        return
    if os.path.exists(out) and not os.path.isdir(out):
        raise RunError(f"--out '{out}' is a file, not a directory")
    parent = out
    while not os.path.exists(parent):
        parent = os.path.dirname(parent) or "."
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RunError(f"--out '{out}': directory '{parent}' is not writable")


def open_datasets(mixture: Mixture, data_dir: str) -> dict[str, RLDSDataset]:
    datasets, missing = {}, []
    for name, cfg in mixture.datasets.items():
        try:
            datasets[name] = open_dataset(data_dir, cfg)
        except RLDSError as e:
            if "data dir" in str(e):
                raise RunError(str(e)) from None
            missing.append(str(e))
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise RunError(f"{missing[0]}{more}; fetch it or leave it out with --datasets")
    return datasets


def make_context(args, beam_args) -> RunContext:
    from pipeline.run import UsageError, resolve_stages

    mixture = resolve_mixture(args.mixture, args.datasets)
    try:
        resolve_stages(args.stages, args.no_depth)
    except UsageError as e:
        raise RunError(str(e)) from None
    if args.max_episodes is not None and args.max_episodes < 1:
        raise RunError(f"--max-episodes must be a positive number, got {args.max_episodes}")
    if args.image_size < 8:
        raise RunError(f"--image-size must be at least 8 pixels, got {args.image_size}")
    out = args.out or os.path.join("output", mixture.name)
    check_out_dir(out)
    if args.data_dir is None:
        from pipeline.sample import default_corpus_dir, ensure_corpus

        log(f"No --data-dir given: running on the built-in sample corpus at {default_corpus_dir()} "
            f"(synthetic data, not for training)")
        data_dir = str(ensure_corpus())
    else:
        data_dir = args.data_dir
        log(f"Reading RLDS data from {data_dir}")
    datasets = open_datasets(mixture, data_dir)
    return RunContext(args, beam_args, mixture, data_dir, out, datasets)


def run_pipeline(args, beam_args) -> int:
    from pipeline.run import resolve_stages

    t0 = time.time()
    try:
        ctx = make_context(args, beam_args)
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    stages = resolve_stages(args.stages, args.no_depth)
    log(f"mixture '{ctx.mixture.name}': {len(ctx.datasets)} datasets, stages {','.join(stages)}, output {ctx.out}")

    from pipeline import stage_export, stage_grids, stage_stats

    try:
        stats = stage_stats.run(ctx) if "stats" in stages else stage_stats.load(ctx)
        grid = None
        if "grids" in stages:
            grid = stage_grids.run(ctx, stats)
        elif "export" in stages:
            grid = stage_grids.load(ctx)
        summary = stage_export.run(ctx, stats, grid, depth="depth" in stages) if "export" in stages else {}
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except StrictError as e:
        write_json(ctx.path("report.json"), ctx.report.to_dict())
        print(f"error: {e}", file=sys.stderr)
        return 1
    write_json(ctx.path("report.json"), ctx.report.to_dict())
    print_summary(ctx, summary, time.time() - t0)
    return 0


def print_summary(ctx: RunContext, summary: dict, seconds: float) -> None:
    r = ctx.report
    lines = [f"done in {seconds:.1f}s: {len(ctx.datasets)} datasets, {sum(r.episodes_read.values())} episodes, "
             f"{sum(r.steps_read.values())} steps"]
    if summary:
        lines.append(f"  shards: {summary['shards']} ({summary['bytes'] / 1e6:.1f} MB) -> {ctx.out}/manifest.json")
    if r.dropped:
        lines.append(f"  dropped: {r.episodes_lost()} episodes ({len(r.dropped)} problems; see {ctx.out}/report.json)")
        reasons: dict[str, int] = {}
        for p in r.dropped:
            key = f"{p['dataset']}: {p['reason'].split(' (')[0]}"
            reasons[key] = reasons.get(key, 0) + p["episodes_lost"]
        lines += [f"    {n} x {k}" for k, n in sorted(reasons.items())[:10]]
    else:
        lines.append("  dropped: nothing")
    for note in r.notes:
        lines.append(f"  note: {note}")
    print("\n".join(lines))
