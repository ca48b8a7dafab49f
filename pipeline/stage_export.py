"""Stage 3+4: (depth and) export: tokenized Arrow shards, then the manifest, written last."""
from __future__ import annotations

import os
import re
import time

from pipeline.stages import TOOL_VERSION, RunContext, RunError, log, read_lines, sha256_of, write_json, write_lines

SHARD_TARGET_BYTES = 256 << 20


def _depth_setup(ctx: RunContext, want: bool) -> dict | None:
    """The depth model's description, or None with the reason noted (never fake depth)."""
    if not want:
        return None
    from pipeline.depth import DepthEstimator, DepthWeightsNotFound

    try:
        est = DepthEstimator.load(ctx.args.depth_model, backend=ctx.args.depth_backend)
    except DepthWeightsNotFound as e:
        ctx.report.notes.append(f"depth skipped: {e}")
        log(f"depth: skipped: {e}")
        return None
    return est.describe()


def run(ctx: RunContext, stats: dict, grid, depth: bool) -> dict:
    import apache_beam as beam
    from apache_beam.io.filesystems import FileSystems

    from beam_jobs.export import AssembleShardFn, EncodedEpisode, EncodeEpisodeFn, WritePartsFn, read_part_indexes
    from beam_jobs.read import ReadStandardEpisodes, plan_reads
    from pipeline.shards import shard_schema

    args = ctx.args
    depth_info = _depth_setup(ctx, depth)
    grid_json = grid.to_json()
    text, text_info = None, None
    if getattr(args, "text_tokenizer", None):
        from pipeline.text import load_with_action_tokens

        try:
            text, first = load_with_action_tokens(args.text_tokenizer, grid.total_tokens)
        except ValueError as e:
            raise RunError(str(e)) from None
        text.save_pretrained(ctx.path("tokenizer"))  # the trainer's tokenizer, action tokens included
        text_info = {"path": "tokenizer", "source": args.text_tokenizer, "action_token_first_id": first,
                     "action_tokens": grid.total_tokens, "vocab_size": len(text)}
    run_key = sha256_of([TOOL_VERSION, stats, grid_json, args.image_size, args.normalization, depth_info,
                         args.split, args.max_episodes, args.seed, text_info])[:16]
    work = ctx.path(".work", "export", run_key)
    done = {e["episode_id"] for p in read_part_indexes(work) for e in p["episodes"]}
    if done:
        log(f"export: resuming an interrupted run: {len(done)} episode(s) already encoded are reused")

    schemas = {name: shard_schema(cfg.wrist_image is not None, depth_info is not None, text is not None)
               .serialize().to_pybytes() for name, cfg in ctx.configs.items()}
    tasks = plan_reads(ctx.datasets, args.split, args.max_episodes)
    total = sum(t.shard.num_episodes for t in tasks) - len(done)
    log(f"export: encoding {total} episode(s) at {args.image_size}x{args.image_size}"
        + (f", with depth ({depth_info['model']})" if depth_info else ""))
    t0 = time.perf_counter()
    with beam.Pipeline(options=ctx.pipeline_options()) as p:
        read = p | "Read" >> ReadStandardEpisodes(tasks, ctx.configs, images=True, skip=frozenset(done))
        encoded = read.episodes | "Encode" >> beam.ParDo(EncodeEpisodeFn(
            stats, grid_json, args.image_size, args.normalization, depth_info is not None, total,
            text, text_info["action_token_first_id"] if text_info else 0)
        ).with_output_types(EncodedEpisode)
        if depth_info:
            from beam_jobs.depth import EpisodeDepth

            encoded = encoded | "Depth" >> EpisodeDepth(args.depth_model, args.depth_backend)
        encoded | "WriteParts" >> beam.ParDo(WritePartsFn(work, schemas))
        write_lines(read.bad, FileSystems.join(work, "problems.jsonl"), "Problems")
    ctx.report.add_problems(read_lines(FileSystems.join(work, "problems.jsonl")))

    t1 = time.perf_counter()
    jobs = plan_final_shards(ctx, read_part_indexes(work))
    with beam.Pipeline(options=ctx.pipeline_options()) as p:
        written = (p | "Shards" >> beam.Create(jobs) | "Spread" >> beam.Reshuffle()
                   | "Assemble" >> beam.ParDo(AssembleShardFn()))
        write_lines(written, FileSystems.join(work, "shards.jsonl"), "Written")
    shards = sorted(read_lines(FileSystems.join(work, "shards.jsonl")), key=lambda s: s["path"])
    log(f"export: episodes encoded in {t1 - t0:.1f}s, {len(shards)} shard(s) assembled in {time.perf_counter() - t1:.1f}s")
    remove_stale_shards(ctx, {j.path for j in jobs})

    manifest = build_manifest(ctx, stats, grid, shards, depth_info)
    manifest["text_tokenizer"] = text_info
    write_json(ctx.path("manifest.json"), manifest)
    FileSystems.delete([ctx.path(".work")])  # parts are only needed to resume this export
    return {"shards": len(shards), "bytes": sum(s["bytes"] for s in shards)}


def plan_final_shards(ctx: RunContext, parts: list[dict]) -> list:
    from beam_jobs.export import ShardJob, episode_order
    from pipeline.shards import plan_shards, shard_name

    located: dict[str, dict] = {}
    for part in parts:
        offset = 0
        for e in part["episodes"]:
            # a retried bundle may have written an episode twice: the first part (by path) wins
            located.setdefault(e["episode_id"], {**e, "dataset": part["dataset"], "part": part["path"], "offset": offset})
            offset += e["rows"]
    target = int(ctx.args.shard_mb * (1 << 20)) if getattr(ctx.args, "shard_mb", None) else SHARD_TARGET_BYTES
    jobs = []
    for dataset in ctx.mixture.weights:
        eps = sorted((e for e in located.values() if e["dataset"] == dataset),
                     key=lambda e: episode_order(dataset, e["episode_id"]))
        groups = plan_shards([e["bytes"] for e in eps], target)
        for i, (lo, hi) in enumerate(groups):
            path = ctx.path("shards", dataset, shard_name(split_label(ctx.args.split), i, len(groups)))
            jobs.append(ShardJob(dataset, path, tuple((e["episode_id"], e["part"], e["offset"], e["rows"])
                                                      for e in eps[lo:hi])))
    return jobs


def remove_stale_shards(ctx: RunContext, keep: set[str]) -> None:
    from apache_beam.io.filesystems import FileSystems

    pattern = ctx.path("shards", "*", "*.arrow")
    stale = [m.path for m in FileSystems.match([pattern])[0].metadata_list if m.path not in keep]
    if stale:
        FileSystems.delete(stale)


def split_label(split_spec: str) -> str:
    """A file-name-safe label of the split spec: train -> train, train[:10%] -> train, train+val -> train+val."""
    return "+".join(re.findall(r"(?:^|\+)\s*([\w-]+)", split_spec)) or "data"


def build_manifest(ctx: RunContext, stats: dict, grid, shards: list[dict], depth_info: dict | None) -> dict:
    from pipeline.depth import DEPTH_FORMAT
    from pipeline.ego3d import scale_intrinsics
    from pipeline.mixing import effective_weights
    from pipeline.shards import FORMAT_VERSION, shard_schema
    from pipeline.stage_grids import grid_path
    from pipeline.stage_stats import STATISTICS_FILE

    size = ctx.args.image_size
    transitions = {n: stats[n]["num_transitions"] for n in ctx.mixture.weights}
    datasets = {}
    for name, cfg in ctx.configs.items():
        intr = cfg.intrinsics
        own = [s for s in shards if s["dataset"] == name]
        datasets[name] = {
            "num_transitions": transitions[name],
            "num_trajectories": stats[name]["num_trajectories"],
            "has_wrist_image": cfg.wrist_image is not None,
            "control_hz": cfg.control_hz,
            # images are resized to size x size, so each axis scales on its own
            "intrinsics": dict(zip(("fx", "fy", "cx", "cy"), scale_intrinsics(
                intr.fx, intr.fy, intr.cx, intr.cy, (intr.width, intr.height), (size, size))),
                width=size, height=size, source=intr.source),
            "shards": [{"path": os.path.relpath(s["path"], ctx.out) if "://" not in s["path"] else s["path"],
                        **{k: s[k] for k in ("num_rows", "num_episodes", "sha256", "bytes")}} for s in own],
        }
    text = bool(getattr(ctx.args, "text_tokenizer", None))
    schema_names = sorted({f.name for cfg in ctx.configs.values()
                           for f in shard_schema(cfg.wrist_image is not None, depth_info is not None, text)})
    return {
        "format_version": FORMAT_VERSION,
        "tool_version": TOOL_VERSION,
        "mixture": ctx.mixture.name,
        "mixture_source": ctx.mixture.source,
        "split": ctx.args.split,
        "seed": ctx.args.seed,
        "image_size": size,
        "normalization": ctx.args.normalization,
        "weights": dict(ctx.mixture.weights),
        "effective_weights": effective_weights(ctx.mixture.weights, transitions),
        "unbalanced_weights": effective_weights(ctx.mixture.weights, transitions, balance=False),
        "datasets": datasets,
        "columns": schema_names,
        "grid": os.path.relpath(grid_path(ctx), ctx.out) if "://" not in ctx.out else grid_path(ctx),
        "grid_sha256": sha256_of(grid.to_json()),
        "statistics": STATISTICS_FILE,
        "statistics_sha256": sha256_of(stats),
        "depth": {**depth_info, **DEPTH_FORMAT} if depth_info else None,
        "inputs": {name: {"version": cfg.version, "path": ctx.datasets[name].directory}
                   for name, cfg in ctx.configs.items()},
    }
