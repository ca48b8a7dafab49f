"""What made an export, recorded in its manifest, and whether a run would make it again.

    manifest["inputs"][dataset] = {version, root, path, fingerprint, synthetic}
    manifest["synthetic"]       = any dataset from the built-in sample corpus
    manifest["grid_source"]     = {"kind": "fitted", ...} or {"kind": "given", "path", "sha256", "made_by"}
    manifest["run_key"]         = a key over the settings, the inputs and the export as written

A run whose key equals the manifest's, on an export whose files are all there as listed, has
nothing to do: it says "up to date" and leaves every file untouched. The key is taken over the
settings and inputs (no timestamps, no --cache or --overwrite: they do not change a byte) and over
the manifest's grid, image size and shard hashes, so an export rewritten since (pipeline.export,
grids.rediscretize --retokenize) is never taken for this run's.
"""

from __future__ import annotations

from dataclasses import asdict

from pipeline import __version__
from pipeline.context import RunContext
from shards.manifest import REPORT_FILE, ManifestError, owned_shard_path
from storage import files
from storage.jsonio import read_json, sha256_of
from transforms.standardize import TRANSFORM_VERSION


def inputs(ctx: RunContext) -> dict:
    return {
        name: {
            "version": ctx.configs[name].version,
            "root": ctx.plan.root(name),
            "path": ds.directory,
            "fingerprint": ctx.fingerprint(name),
            "synthetic": ctx.plan.synthetic(name),
        }
        for name, ds in ctx.datasets.items()
    }


def settings(ctx: RunContext) -> dict:
    """Everything an export's bytes depend on, as this run would make it."""
    o = ctx.options
    grid = None
    if o.grid:
        grid = files.sha256_file(o.grid) if files.exists(o.grid) else "missing"
    return {
        "tool_version": __version__,
        "transform_version": TRANSFORM_VERSION,
        "mixture": ctx.mixture.name,
        "mixture_source": ctx.mixture.source,
        "weights": dict(ctx.mixture.weights),
        "configs": {n: asdict(c) for n, c in ctx.configs.items()},
        "inputs": inputs(ctx),
        "split": o.split,
        "max_episodes": o.max_episodes,
        "image_size": o.image_size,
        "normalization": o.normalization,
        "grid_fit": o.grid_fit,
        "grid_exclude": list(o.grid_exclude) if o.grid_exclude is not None else None,
        "grid": grid,
        "depth": [o.depth_model, o.depth_backend] if "depth" in o.stages else None,
        "shard_mb": o.shard_mb,
        "text_tokenizer": o.text_tokenizer,
        "seed": o.seed,
    }


def run_key(material: dict, manifest: dict) -> str:
    shards = sorted(
        [s.get("path"), s.get("sha256")] for d in manifest["datasets"].values() for s in d.get("shards", [])
    )
    return sha256_of([material, manifest.get("grid_sha256"), manifest.get("image_size"), shards])[:32]


def up_to_date(ctx: RunContext, manifest: dict | None) -> str | None:
    """Why the export in OUT is exactly what this run would write (one line), or None."""
    if manifest is None or "export" not in ctx.options.stages or not manifest.get("run_key"):
        return None
    try:
        if manifest["run_key"] != run_key(settings(ctx), manifest):
            return None
        shards = [s for d in manifest["datasets"].values() for s in d["shards"]]
        for s in shards:  # there, as listed (sizes: a rerun must not read the whole export)
            path = owned_shard_path(ctx.out, s["path"])
            if not files.exists(path) or files.size(path) != s["bytes"]:
                return None
        if sha256_of(read_json(ctx.path(manifest["statistics"]))) != manifest["statistics_sha256"]:
            return None
        if sha256_of(read_json(ctx.path(manifest["grid"]))) != manifest["grid_sha256"]:
            return None
        report = read_json(ctx.path(REPORT_FILE))
    except (OSError, ValueError, KeyError, TypeError, ManifestError):
        return None
    if ctx.options.strict and report.get("problems"):
        return None  # the export is the same, but --strict fails on its problems: the run says so
    return (
        f"up to date: {ctx.out} holds the export this command makes from the same inputs and settings "
        f"({len(shards)} shard(s), {sum(s['num_rows'] for s in shards)} rows); nothing was changed"
    )
