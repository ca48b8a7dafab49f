"""Stage 3+4: (depth and) export: tokenized Arrow shards, then the manifest, written last."""

from __future__ import annotations

import posixpath
import time

from depth.codec import DEPTH_FORMAT
from grids.grid import ActionGrid
from manifests.weights import effective_weights
from pipeline import __version__, ownership, provenance
from pipeline.context import DataLossError, RunContext, RunError, StrictError, log
from shards.manifest import FORMAT_VERSION, MANIFEST_FILE, REPORT_FILE, STATISTICS_FILE
from shards.schema import plan_shards, shard_name, shard_schema
from sources.rlds import split_names
from storage import files
from storage.jsonio import sha256_of, write_json
from transforms.frames import scale_intrinsics


def _depth_setup(ctx: RunContext, want: bool) -> dict | None:
    """The depth model's description, or None with the reason noted (never fake depth)."""
    if not want:
        return None
    from depth.model import DepthEstimator, DepthUnavailable

    try:
        est = DepthEstimator.load(ctx.options.depth_model, backend=ctx.options.depth_backend)
    except DepthUnavailable as e:  # no weights, or no torch/transformers (the worker install)
        ctx.report.notes.append(f"depth skipped: {e}")
        log(f"depth: skipped: {e}")
        return None
    return est.describe()


def _text_setup(ctx: RunContext, grid: ActionGrid):
    """The text tokenizer with the action tokens added (saved with the output) and its description."""
    if not ctx.options.text_tokenizer:
        return None, None
    from shards.text import load_with_action_tokens

    try:
        text, first = load_with_action_tokens(ctx.options.text_tokenizer, grid.total_tokens)
    except ValueError as e:
        raise RunError(str(e)) from None
    text.save_pretrained(ctx.path("tokenizer"))  # the trainer's tokenizer, action tokens included
    return text, {
        "path": "tokenizer",
        "source": ctx.options.text_tokenizer,
        "action_token_first_id": first,
        "action_tokens": grid.total_tokens,
        "vocab_size": len(text),
    }


def run(ctx: RunContext, stats: dict, grid: ActionGrid, depth: bool) -> dict:
    import apache_beam as beam

    from beam_jobs.collect import run_and_collect
    from beam_jobs.reading import task_name
    from beam_jobs.shard_writing import (
        EPISODES_PER_TASK,
        AssembleShardFn,
        Encoding,
        ReadEncodeFn,
        WritePartFn,
        read_part_indexes,
    )
    from sources.episodes import plan_reads

    opts = ctx.options
    depth_info = _depth_setup(ctx, depth)
    grid_json = grid.to_json()
    text, text_info = _text_setup(ctx, grid)
    run_key = sha256_of(
        [
            __version__,
            stats,
            grid_json,
            opts.image_size,
            opts.normalization,
            depth_info,
            opts.split,
            opts.max_episodes,
            opts.seed,
            text_info,
            EPISODES_PER_TASK,
            {name: ctx.fingerprint(name) for name in ctx.datasets},
        ]
    )[:16]  # over everything that determines the parts' bytes: a part of another run is never reused
    work = ctx.path(".work", "export", run_key)
    for tmp in files.glob_in(ctx.path("shards"), "*/*.tmp-*") + files.glob_in(work, "*.tmp-*"):
        files.remove(tmp)  # left by a killed run (this run holds the output's lock: no other writes them)
    done = {i["task"] for i in read_part_indexes(work)}
    tasks = frame_tasks(ctx, plan_reads(ctx.datasets, opts.split, opts.max_episodes, EPISODES_PER_TASK), depth_info)
    ctx.progress = (lambda: len(read_part_indexes(work)), len(tasks))
    todo = [t for t in tasks if task_name(t.read) not in done]
    if done:
        log(
            f"export: resuming an interrupted run: {len(tasks) - len(todo)} of {len(tasks)} task(s) already encoded are reused"
        )

    schemas = {
        name: schema_for(cfg, depth_info is not None, text is not None, proprio_dim(stats, name))
        .serialize()
        .to_pybytes()
        for name, cfg in ctx.configs.items()
    }
    total = sum(t.read.shard.num_episodes for t in todo)
    cached = [t for t in todo if t.cached]
    log(
        f"export: {total} episode(s) in {len(todo)} task(s) at {opts.image_size}x{opts.image_size}"
        + (f", with depth ({depth_info['model']})" if depth_info else "")
        + (
            f": {len(cached)} task(s) take their frames from the frame cache (no image decoded), "
            f"{len(todo) - len(cached)} are encoded"
            if ctx.frames_dir
            else ""
        )  # fmt: skip
    )
    encoding = Encoding(
        stats,
        grid_json,
        opts.image_size,
        opts.normalization,
        depth_info is not None,
        text,
        text_info["action_token_first_id"] if text_info else 0,
    )

    def encode(p):
        encoded = (
            p
            | "Tasks" >> beam.Create(todo)
            | "Spread" >> beam.Reshuffle()
            | "ReadEncode" >> beam.ParDo(ReadEncodeFn(ctx.configs, encoding, opts.seed))
        )
        if depth_info:
            from beam_jobs.depth_step import with_depth

            encoded = with_depth(encoded, opts.depth_model, opts.depth_backend)
        return encoded | "WriteParts" >> beam.ParDo(WritePartFn(work, schemas))

    t0 = time.perf_counter()
    if todo:
        with export_progress(ctx, work, total, len(todo), len(done), depth_info is not None):
            run_and_collect(
                encode, ctx.beam_args, files.join(work, "parts.pkl"), key=lambda i: (i["task"], i["path"] or "")
            )
    indexes = read_part_indexes(work)
    for index in indexes:
        ctx.report.add_problems(index["problems"])
        ctx.report.not_sampled[index["dataset"]] += index["steps_not_sampled"]
    log_workers(indexes)
    note_frame_sizes(ctx, indexes)
    if ctx.options.strict and ctx.report.problems:  # e.g. a frame that does not decode: found only now
        raise StrictError(
            f"--strict: {len(ctx.report.problems)} problem(s) in the input, first: {ctx.report.first_problem_line()}"
        )
    check_nothing_lost(ctx, indexes)

    t1 = time.perf_counter()
    jobs = plan_final_shards(ctx, indexes)
    shards = run_and_collect(
        lambda p: (
            p
            | "Shards" >> beam.Create(jobs)
            | "Spread" >> beam.Reshuffle()
            | "Assemble" >> beam.ParDo(AssembleShardFn())
        ),
        ctx.beam_args,
        files.join(work, "shards.pkl"),
        key=lambda s: s["path"],
    )
    log(
        f"export: episodes encoded in {t1 - t0:.1f}s, {len(shards)} shard(s) assembled in {time.perf_counter() - t1:.1f}s"
    )
    without = [n for n in ctx.datasets if not any(s["dataset"] == n for s in shards)]
    if without:
        raise DataLossError(ctx.report.fail(f"dataset '{without[0]}': the export wrote no shard for it"))
    previous = ownership.previous_shards(ctx.out)
    manifest = build_manifest(ctx, stats, grid, shards, depth_info)
    manifest["text_tokenizer"] = text_info
    manifest["run_key"] = provenance.run_key(provenance.settings(ctx), manifest)
    write_json(ctx.path(MANIFEST_FILE), manifest)
    for path in previous - {j.path for j in jobs}:  # the previous export's shards this one replaced
        files.remove(path)
    files.remove(ctx.path(".work"))  # parts are only needed to resume this export
    clean_frame_cache(ctx, tasks)
    return {"shards": len(shards), "bytes": sum(s["bytes"] for s in shards)}


def export_progress(ctx: RunContext, work: str, episodes: int, tasks: int, done: int, depth: bool):
    """The export's (and depth's) progress; out of process, counted from the part indexes written."""
    import contextlib

    from beam_jobs.progress import runs_in_process, stage_progress

    def finished() -> int:
        return len(files.glob(files.join(work, "*.json"))) - done

    stack = contextlib.ExitStack()
    stack.enter_context(stage_progress("export", episodes, ctx.beam_args, poll=finished, poll_total=tasks))
    if depth and runs_in_process(ctx.beam_args):  # out of process, the part files count both
        stack.enter_context(stage_progress("depth", episodes, ctx.beam_args))
    return stack


def schema_for(cfg, depth: bool, text: bool, proprio: int = 0):
    return shard_schema(
        cfg.wrist_image is not None, depth, text, bool(cfg.primary_choices), bool(cfg.sample_filter), proprio
    )


def proprio_dim(stats: dict, name: str) -> int:
    """Dims of the dataset's proprio column: those of its proprio statistics; 0 (no column) without them."""
    return len(stats[name]["proprio"]["mean"]) if "proprio" in stats[name] else 0


def frame_tasks(ctx: RunContext, tasks: list, depth_info: dict | None) -> list:
    """The export's tasks, each with its frame cache entry and whether that entry exists (one listing
    per dataset, not a look-up per task)."""
    from beam_jobs.frame_cache import entry_name, frames_key
    from beam_jobs.shard_writing import ExportTask

    root = ctx.frames_dir
    if root is None:
        return [ExportTask(t) for t in tasks]
    dirs, present = {}, {}
    for name in ctx.datasets:
        key = frames_key(
            __version__, ctx.fingerprint(name), ctx.configs[name], ctx.options.image_size, depth_info, ctx.options.seed
        )
        dirs[name] = files.join(root, name, key)
        present[name] = set(files.glob_in(dirs[name], "*.arrow"))
    out = []
    for t in tasks:
        path = files.join(dirs[t.dataset], entry_name(t))
        out.append(ExportTask(t, path, path in present[t.dataset]))
    return out


def clean_frame_cache(ctx: RunContext, tasks: list) -> None:
    """The default cache (OUT/.cache/frames) keeps, for each dataset of this run, only the entries this
    run used; the entries of datasets not in this run stay (adding one back encodes nothing). A shared
    --cache DIR is never cleaned by a run: other outputs may use its entries."""
    if ctx.frames_dir is None or ctx.shared_cache:
        return
    used = {t.frames for t in tasks}
    for name in ctx.datasets:
        keep = {t.frames.rsplit("/", 1)[0] for t in tasks if t.read.dataset == name}  # its <key> folder
        for d in files.glob_in(files.join(ctx.frames_dir, name), "*"):
            if d not in keep:
                files.remove(d)  # frames of other settings or inputs
        for d in keep:
            for entry in files.glob_in(d, "*"):
                if entry not in used:
                    files.remove(entry)  # tasks this run does not have (e.g. another --max-episodes)


def check_nothing_lost(ctx: RunContext, indexes: list[dict]) -> None:
    """A dataset with no episode left to export fails the run (exit 1), its losses counted in report.json."""
    kept = {name: 0 for name in ctx.datasets}
    for index in indexes:
        kept[index["dataset"]] += len(index["episodes"])
    for name, n in kept.items():
        if n:
            continue
        lost: dict[str, int] = {}
        for p in ctx.report.problems:
            if p["dataset"] == name and p["episodes_lost"]:
                reason = p["reason"].split(" (")[0]
                lost[reason] = lost.get(reason, 0) + p["episodes_lost"]
        if not lost:
            raise DataLossError(
                ctx.report.fail(f"dataset '{name}': no episode to export in split '{ctx.options.split}'")
            )
        reason, count = max(lost.items(), key=lambda kv: kv[1])
        more = f", and {len(lost) - 1} other reason(s)" if len(lost) > 1 else ""
        raise DataLossError(
            ctx.report.fail(
                f"dataset '{name}': all {sum(lost.values())} episode(s) lost, none left to export "
                f"({count} x {reason}{more}; see {ctx.path(REPORT_FILE)})"
            )
        )


def note_frame_sizes(ctx: RunContext, indexes: list[dict]) -> None:
    """A dataset whose frames are not the size its config's image_size ([H, W]) says: once, in the
    run's output and report.json's notes (the config's size documents the data; intrinsics carry their
    own width and height)."""
    sizes: dict[str, dict[str, int]] = {}
    for index in indexes:
        for size, n in (index.get("frame_sizes") or {}).items():
            sizes.setdefault(index["dataset"], {})
            sizes[index["dataset"]][size] = sizes[index["dataset"]].get(size, 0) + n
    for name, seen in sizes.items():
        want = "x".join(str(v) for v in ctx.configs[name].image_size)
        other = {s: n for s, n in seen.items() if s != want}
        if other:
            total = sum(seen.values())
            listed = ", ".join(f"{s} ({n} of {total} episode(s))" for s, n in sorted(other.items()))
            ctx.report.notes.append(
                f"dataset '{name}': its frames are {listed} (H x W), its config says image_size "
                f"{list(ctx.configs[name].image_size)} ([H, W]): correct image_size in the config "
                "(intrinsics carry their own width and height)"
            )


def log_workers(indexes: list[dict]) -> None:
    """How the encoding was split over worker processes (this run's and a resumed run's)."""
    per_worker: dict[str, int] = {}
    for index in indexes:
        per_worker[index["worker"]] = per_worker.get(index["worker"], 0) + len(index["episodes"])
    if per_worker:
        split = "/".join(str(n) for n in sorted(per_worker.values(), reverse=True))
        log(f"export: {sum(per_worker.values())} episode(s) encoded by {len(per_worker)} worker process(es) ({split})")


def plan_final_shards(ctx: RunContext, parts: list[dict]) -> list:
    from beam_jobs.shard_writing import ShardJob, episode_order

    located: dict[tuple[str, str], dict] = {}
    for part in parts:
        offset = 0
        for e in part["episodes"]:
            # a retried bundle may have written an episode twice: the first part (by path) wins. Keyed by
            # dataset too: two datasets' RLDS files may have the same names, and so the same episode ids
            located.setdefault(
                (part["dataset"], e["episode_id"]),
                {**e, "dataset": part["dataset"], "part": part["path"], "offset": offset},
            )
            offset += e["rows"]
    jobs = []
    for dataset in ctx.mixture.weights:
        eps = sorted(
            (e for e in located.values() if e["dataset"] == dataset),
            key=lambda e: episode_order(dataset, e["episode_id"]),
        )
        groups = plan_shards([e["bytes"] for e in eps], ctx.options.shard_bytes)
        for i, (lo, hi) in enumerate(groups):
            path = ctx.path("shards", dataset, shard_name(split_label(ctx.options.split), i, len(groups)))
            jobs.append(
                ShardJob(dataset, path, tuple((e["episode_id"], e["part"], e["offset"], e["rows"]) for e in eps[lo:hi]))
            )
    return jobs


def split_label(split_spec: str) -> str:
    """A file-name-safe label of the split spec: train -> train, train[:10%] -> train, train+val -> train+val."""
    return "+".join(split_names(split_spec)) or "data"


def relative_to_out(ctx: RunContext, path: str) -> str:
    return posixpath.relpath(path, ctx.out) if not files.is_url(ctx.out) else path[len(ctx.out.rstrip("/")) + 1 :]


def build_manifest(ctx: RunContext, stats: dict, grid: ActionGrid, shards: list[dict], depth_info: dict | None) -> dict:
    size = ctx.options.image_size
    # what the shards hold (episodes dropped at export, e.g. for a bad frame, are not there): the
    # reader refuses a manifest whose counts or weights contradict its shards
    transitions = {n: sum(s["num_rows"] for s in shards if s["dataset"] == n) for n in ctx.mixture.weights}
    datasets = {}
    for name, cfg in ctx.configs.items():
        intr = cfg.intrinsics
        own = [s for s in shards if s["dataset"] == name]
        datasets[name] = {
            "num_transitions": transitions[name],
            "num_trajectories": sum(s["num_episodes"] for s in own),
            "has_wrist_image": cfg.wrist_image is not None,
            "control_hz": cfg.control_hz,
            # action chunks past an episode's end repeat the absolute dimensions, pad the others with 0
            "absolute_action_mask": cfg.action.absolute_mask,
            "cameras": list(cfg.primary_choices or [cfg.primary_image]),  # `image` is one of these per episode
            "sample_filter": cfg.sample_filter,
            "steps_not_sampled": ctx.report.not_sampled[name],
            # images are resized to size x size, so each axis scales on its own
            "intrinsics": dict(
                zip(
                    ("fx", "fy", "cx", "cy"),
                    scale_intrinsics(intr.fx, intr.fy, intr.cx, intr.cy, (intr.width, intr.height), (size, size)),
                ),
                width=size,
                height=size,
                source=intr.source,
                # the camera's own K at its own size: what SpatialVLA's processor scales itself (shards.spatialvla)
                native={k: getattr(intr, k) for k in ("fx", "fy", "cx", "cy", "width", "height")},
            ),
            "shards": [
                {
                    "path": relative_to_out(ctx, s["path"]),
                    **{k: s[k] for k in ("num_rows", "num_episodes", "sha256", "bytes", "checksums_sha256") if k in s},
                }
                for s in own
            ],
        }
    text = bool(ctx.options.text_tokenizer)
    schema_names = sorted(
        {
            f.name
            for name, cfg in ctx.configs.items()
            for f in schema_for(cfg, depth_info is not None, text, proprio_dim(stats, name))
        }
    )
    return {
        "format_version": FORMAT_VERSION,
        "tool_version": __version__,
        "mixture": ctx.mixture.name,
        "mixture_source": ctx.mixture.source,
        "split": ctx.options.split,
        "seed": ctx.options.seed,
        "image_size": size,
        "normalization": ctx.options.normalization,
        "weights": dict(ctx.mixture.weights),
        "effective_weights": effective_weights(ctx.mixture.weights, transitions),
        "unbalanced_weights": effective_weights(ctx.mixture.weights, transitions, balance=False),
        "datasets": datasets,
        "columns": schema_names,
        "grid": relative_to_out(ctx, ctx.grid_path),
        "grid_sha256": sha256_of(grid.to_json()),
        "statistics": STATISTICS_FILE,
        "statistics_sha256": sha256_of(stats),
        "grid_source": ctx.grid_source,
        "depth": {**depth_info, **DEPTH_FORMAT} if depth_info else None,
        "inputs": provenance.inputs(ctx),  # roots, dataset dirs, fingerprints, synthetic or not
        "synthetic": any(ctx.plan.synthetic(name) for name in ctx.datasets),
    }
