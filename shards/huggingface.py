"""A whole export as one Hugging Face `datasets` dataset, with nothing copied into the datasets cache.

    from shards.huggingface import load_export
    ds = load_export("output/oxe_magic_soup")                                  # every dataset, one Dataset
    ds[0]["image"], ds[0]["dataset"]                                            # a PIL image; its dataset
    mix = load_export("output/oxe_magic_soup", interleave=True, seed=0)        # drawn by effective weight
    stream = load_export("output/oxe_magic_soup", streaming=True)              # an IterableDataset

Rows keep the export's columns, its `dataset` column included; images (`image`, `wrist_image`, `depth`)
are `Image` features, fixed-size lists `Sequence` features of their length. Datasets of an export differ
in columns (a wrist camera, DROID's `camera` and `sampled`, proprio of different sizes): every row has the
union of the columns, None where its dataset has no such column, and a column whose length differs
between datasets (proprio) is a variable-length list.

Why not the datasets cache. The shards are zstd-compressed Arrow IPC *files*: `Dataset.from_file` reads
only IPC *streams*, and Arrow cannot memory-map a compressed buffer anyway, so `load_dataset("arrow",
...)` converts every shard into a decompressed copy in the cache (a 264 KB sample shard became 666 KB).
Here instead:
- `load_export(OUT)` (map-style, random access, len): the shards are read once into memory, decompressed
  (RAM about the shards' decompressed size: their JPEG frames barely compress, so about the export's
  size on disk), and wrapped as an in-memory `datasets.Dataset`; nothing is written. An export whose
  shards exceed half the memory available is refused in one line (MemoryError) before anything is read:
  use `streaming=True`, or `in_memory=False` for the cache copy (disk: the decompressed size).
- `load_export(OUT, streaming=True)`: an `IterableDataset` that reads the shards record batch by record
  batch (memory: one batch per dataset); nothing is written; shards are split across DataLoader workers.
- `interleave=True`: `datasets.interleave_datasets` over the datasets with the manifest's effective weights
  (`balance=False`: its unbalanced weights) and `seed`; `stopping_strategy` as theirs (default
  "first_exhausted": the stream ends when one dataset runs out).

Each shard is checked against the manifest first (size; sha256 with `verify=True`, the default).
`datasets` is imported here only (an optional dependency).
"""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa

from shards.manifest import ManifestError, export_dir, shard_path, verify_manifest
from shards.schema import hf_feature, open_ipc


def load_export(
    export: str,
    dataset: str | list[str] | None = None,
    *,
    streaming: bool = False,
    interleave: bool = False,
    balance: bool = True,
    seed: int | None = 0,
    stopping_strategy: str = "first_exhausted",
    in_memory: bool = True,
    decode_images: bool = True,
    verify: bool = True,
    **load_kwargs,
):
    """An export (its directory or manifest.json) as one `datasets.Dataset` (or `IterableDataset` with
    `streaming=True`): every dataset, or `dataset` (a name or a list), rows in shard order, datasets in
    manifest order; `interleave=True` draws them by weight instead. `in_memory=False` loads through
    `datasets.load_dataset("arrow", ...)` and its cache (`load_kwargs` go there, e.g. cache_dir; otherwise
    they are not used). `decode_images=False`: images as {"bytes", "path"} (the JPEG bytes), not PIL."""
    import datasets

    out = export_dir(export)
    manifest = verify_manifest(out, check_hashes=verify)
    names = _names(out, manifest, dataset)
    paths = {n: [shard_path(out, s) for s in manifest["datasets"][n]["shards"]] for n in names}
    schemas = {n: _schema(out, n, paths[n]) for n in names}
    if in_memory and not streaming:
        _check_fits(out, sum(s["bytes"] for n in names for s in manifest["datasets"][n]["shards"]))
    features = union_features(list(schemas.values()))
    if not decode_images:
        features = {k: {**v, "decode": False} if v.get("_type") == "Image" else v for k, v in features.items()}
    hf_features = datasets.Features.from_dict(features)
    target = hf_features.arrow_schema

    parts = []
    for n in names:
        if streaming:
            part = datasets.IterableDataset.from_generator(
                _rows, features=hf_features, gen_kwargs={"paths": paths[n], "schema": target}
            )
        elif in_memory:
            tables = [aligned(open_ipc(p).read_all(), target) for p in paths[n]]
            table = datasets.table.InMemoryTable(pa.concat_tables(tables) if tables else target.empty_table())
            sums = [s["sha256"] for s in manifest["datasets"][n]["shards"]]
            fingerprint = hashlib.sha256(json.dumps([n, sums, features]).encode()).hexdigest()[:16]
            # the fingerprint given: datasets would otherwise hash (serialize) the whole table to make one
            part = datasets.Dataset(table, info=datasets.DatasetInfo(features=hf_features), fingerprint=fingerprint)
        else:  # the datasets cache: a decompressed copy of every shard
            own = datasets.Features.from_dict({c: features[c] for c in schemas[n].names})
            part = datasets.load_dataset("arrow", data_files=paths[n], split="train", features=own, **load_kwargs)
            for c in features:
                if c not in part.column_names:
                    part = part.add_column(c, [None] * len(part), feature=hf_features[c])
            part = part.select_columns(list(features))
            if part.features != hf_features:
                part = part.cast(hf_features)
        parts.append(part)
    if len(parts) == 1:
        return parts[0]
    if interleave:
        weights = manifest.get("effective_weights" if balance else "unbalanced_weights") or manifest.get("weights")
        ok = isinstance(weights, dict) and all(isinstance(weights.get(n), (int, float)) for n in names)
        if not ok or any(not weights[n] > 0 for n in names):
            raise ManifestError(f"{out}: manifest.json has no positive weight for every dataset of {names}")
        total = sum(weights[n] for n in names)
        return datasets.interleave_datasets(
            parts, probabilities=[weights[n] / total for n in names], seed=seed, stopping_strategy=stopping_strategy
        )
    return datasets.concatenate_datasets(parts)


MEMORY_SHARE = 0.5  # an in-memory load may take at most this share of the memory available


def available_memory() -> int | None:
    """Bytes of memory available to this process now (Linux: MemAvailable), None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _check_fits(out: str, shard_bytes: int) -> None:
    """An export whose shards alone exceed the memory share is refused in one line, before any is read."""
    free = available_memory()
    if free is not None and shard_bytes > MEMORY_SHARE * free:
        raise MemoryError(
            f"{out}: {shard_bytes / 1e9:.1f} GB of shards, more than {MEMORY_SHARE:.0%} of the {free / 1e9:.1f} GB "
            "of memory available: load it with streaming=True, or in_memory=False (a copy in the datasets cache)"
        )


def _names(out: str, manifest: dict, dataset) -> list[str]:
    names = list(manifest["datasets"]) if dataset is None else [dataset] if isinstance(dataset, str) else list(dataset)
    unknown = [n for n in names if n not in manifest["datasets"]]
    if unknown or not names:
        raise ManifestError(f"{out}: no dataset(s) {unknown or names} (it has {sorted(manifest['datasets'])})")
    empty = [n for n in names if not manifest["datasets"][n]["shards"]]
    if empty:
        raise ManifestError(f"{out}: dataset(s) {empty} have no shards")
    return names


def _schema(out: str, name: str, paths: list[str]) -> pa.Schema:
    """The dataset's shard schema; every shard of it must have the same columns."""
    schema = open_ipc(paths[0]).schema.remove_metadata()
    for p in paths[1:]:
        other = open_ipc(p).schema.remove_metadata()
        if not other.equals(schema):
            raise ManifestError(
                f"{p}: columns {other.names} differ from {paths[0]}'s {schema.names} (dataset '{name}')"
            )
    return schema


def union_features(schemas: list[pa.Schema]) -> dict:
    """The `datasets` features (Features.to_dict layout) of the union of the shards' columns, in order of
    first appearance; a fixed-size list whose size differs between datasets becomes variable-length."""
    features: dict = {}
    for schema in schemas:
        for field in schema:
            feature = hf_feature(field.name, field.type)
            seen = features.get(field.name)
            if seen is None:
                features[field.name] = feature
            elif seen != feature:
                if seen.get("_type") == feature.get("_type") == "Sequence" and seen["feature"] == feature["feature"]:
                    features[field.name] = {"feature": feature["feature"], "_type": "Sequence"}
                else:
                    raise ManifestError(f"column '{field.name}' has different types in the export's datasets")
    return features


def aligned(table: pa.Table, target: pa.Schema) -> pa.Table:
    """A shard's table with the union's columns in its order, absent ones null, cast to the union's types
    by `datasets` itself (images: binary -> the Image feature's struct<bytes, path>)."""
    from datasets.table import table_cast

    columns = [
        table.column(f.name) if f.name in table.column_names else pa.nulls(table.num_rows, f.type) for f in target
    ]
    return table_cast(pa.Table.from_arrays(columns, names=target.names), target)


def _rows(paths: list[str], schema: pa.Schema):
    """Rows of the given shards, one record batch in memory at a time (IterableDataset.from_generator)."""
    for path in paths:
        reader = open_ipc(path)
        for i in range(reader.num_record_batches):
            batch = aligned(pa.Table.from_batches([reader.get_batch(i)]), schema)
            yield from batch.to_pylist()
