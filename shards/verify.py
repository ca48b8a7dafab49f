"""python -m shards.verify OUT: check every byte of an export once (e.g. after copying it).

    python -m shards.verify output/bridge            # every shard's sha256 and every batch checksum
    python -m shards.verify output/bridge --quick    # sizes only: no shard byte is read

What it checks: the manifest's own consistency (counts, weights: shards.manifest.check_consistency),
the grid and statistics files against their pins, and per shard: its size and sha256 against the
manifest, its checksum table against the manifest's pin, every column of every record batch against
that table, and its rows, episodes, columns and `dataset` column against the manifest. Each shard is
read once (memory: one shard per thread). One line per bad file, then a summary; exit 0 when
everything matches, 1 on any mismatch, 2 when OUT has no readable manifest.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa

from shards.integrity import IntegrityError
from shards.manifest import ManifestError, check_consistency, export_dir, load_manifest, shard_path
from shards.schema import SMALL_COLUMNS, ShardFile, check_shard
from storage import files
from storage.jsonio import read_json, sha256_of


def check_shard_file(out: str, dataset: str, entry: dict, listed: list | None, quick: bool = False) -> str | None:
    """What is wrong with one shard (None: nothing), reading its bytes once."""
    path = shard_path(out, entry)
    where = f"shard {entry['path']} of dataset '{dataset}'"
    try:
        if quick:
            size = files.size(path)
            return None if size == entry["bytes"] else f"{where}: {size} bytes, the manifest says {entry['bytes']}"
        local = files.local_path(path)
        data = pa.memory_map(local).read_buffer() if local else pa.py_buffer(files.read_bytes(path))
        problems = []
        if data.size == entry["bytes"] and hashlib.sha256(data).hexdigest() != entry["sha256"]:
            problems.append("sha256 does not match the manifest")
        try:
            f = ShardFile(path, entry, where, verify=True, data=data)  # size and checksum pin
            table = f.read()  # every column of every record batch against its checksum
            check_shard(where, f.names, table.select(SMALL_COLUMNS), entry, dataset, listed)
        except (IntegrityError, ManifestError) as e:
            problems.append(str(e).removeprefix(f"{where}: "))
        return f"{where}: {'; '.join(problems)}" if problems else None
    except FileNotFoundError:
        return f"{where}: missing"
    except (IntegrityError, ManifestError) as e:
        return str(e)
    except OSError as e:
        return f"{where}: cannot be read ({e})"


def check_pinned_json(out: str, manifest: dict, key: str, pin_key: str) -> str | None:
    """A JSON file the manifest names (grid, statistics) against the sha256 it pins."""
    if not manifest.get(key) or not manifest.get(pin_key):
        return None
    path = files.join(out, manifest[key])
    try:
        content = read_json(path)
    except FileNotFoundError:
        return f"{manifest[key]}: missing"
    except (OSError, ValueError) as e:
        return f"{manifest[key]}: cannot be read ({e})"
    return (
        None if sha256_of(content) == manifest[pin_key] else f"{manifest[key]}: does not match the manifest's {pin_key}"
    )


def verify(out: str, quick: bool = False, threads: int = 4, echo=print, manifest: dict | None = None) -> list[str]:
    """Every problem of the export at `out`, one line each (empty: everything matches). `manifest`: its
    manifest when already loaded."""
    if manifest is None:
        manifest = load_manifest(out, check=False)  # unreadable: ManifestError, a usage error
    problems = []
    try:
        check_consistency(manifest)
    except ManifestError as e:
        problems.append(str(e))
    for key, pin in (("grid", "grid_sha256"), ("statistics", "statistics_sha256")):
        bad = None if quick else check_pinned_json(out, manifest, key, pin)
        if bad:
            problems.append(bad)
    for line in problems:
        echo(line)
    listed = manifest.get("columns")
    jobs = [(name, s) for name, ds in manifest["datasets"].items() for s in ds.get("shards", [])]
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:  # hashing and pyarrow release the GIL
        for bad in pool.map(lambda job: check_shard_file(out, job[0], job[1], listed, quick), jobs):
            if bad:
                echo(bad)
                problems.append(bad)
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m shards.verify", description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="an export directory (or its manifest.json; local or a URL)")
    p.add_argument("--quick", action="store_true", help="check that every shard is there with its size only")
    p.add_argument("--threads", type=int, default=4, help="shards checked at once (default 4)")
    args = p.parse_args(argv)
    out = export_dir(args.out)
    t0 = time.perf_counter()
    try:
        manifest = load_manifest(out, check=False)
        problems = verify(out, args.quick, args.threads, manifest=manifest)
    except ManifestError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    shards = [s for ds in manifest["datasets"].values() for s in ds.get("shards", [])]
    size = sum(s.get("bytes", 0) for s in shards)
    what = "sizes of" if args.quick else "every byte of"
    summary = (
        f"{out}: checked {what} {len(shards)} shard(s), {sum(s.get('num_rows', 0) for s in shards):,} rows, "
        f"{size / 1e6:,.1f} MB in {time.perf_counter() - t0:.1f}s: "
    )
    print(summary + (f"{len(problems)} problem(s)" if problems else "everything matches the manifest"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
