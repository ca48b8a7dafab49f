"""manifest.json, the export's table of contents, and the layout of an output directory.

    OUT/manifest.json              written last: what the trainer reads
    OUT/dataset_statistics.json    OpenVLA / SpatialVLA layout
    OUT/grids/<mixture>.json       the action grid
    OUT/shards/<dataset>/<split>-00000-of-000NN.arrow
    OUT/report.json                what was read, dropped and why

One parser for every reader of an export (trainer, grid tools, re-export); no Beam, no TensorFlow.
OUT may be a local directory or a URL (storage.files).
"""

from __future__ import annotations

import json
import math
import posixpath
import re
import warnings

from manifests.weights import effective_weights
from storage import files
from storage.jsonio import read_json, sha256_of

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
STATISTICS_FILE = "dataset_statistics.json"
REPORT_FILE = "report.json"


class ManifestError(ValueError):
    """An export that cannot be read as its manifest says; the message names the file or shard."""


def grid_relpath(mixture: str) -> str:
    return f"grids/{mixture}.json"


def export_dir(path: str) -> str:
    """An export directory given as itself or as its manifest.json."""
    path = path.rstrip("/")
    return (posixpath.dirname(path) or ".") if posixpath.basename(path) == MANIFEST_FILE else path


def load_manifest(out_dir: str, check: bool = True) -> dict:
    """The parsed manifest of an export, with a one-line ManifestError when there is none usable, or
    (`check`) when its counts or weights contradict each other (check_consistency)."""
    path = files.join(out_dir, MANIFEST_FILE)
    try:
        manifest = json.loads(files.read_text(path))
    except FileNotFoundError:
        raise ManifestError(f"{path}: no manifest (the export did not finish?)") from None
    except OSError as e:
        raise ManifestError(f"{path}: cannot read ({e})") from None
    except json.JSONDecodeError as e:
        raise ManifestError(f"{path}: not valid JSON ({e.msg})") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        version = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise ManifestError(f"{path}: format_version {version!r}, this reader reads {FORMAT_VERSION}")
    if not isinstance(manifest.get("datasets"), dict):
        raise ManifestError(f"{path}: no 'datasets' table")
    if check:
        check_consistency(manifest, path)
    return manifest


SHA256 = re.compile(r"[0-9a-f]{64}")
WEIGHT_TOLERANCE = 1e-9  # relative: the manifest's weights are JSON doubles written by effective_weights


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_consistency(manifest: dict, path: str = MANIFEST_FILE) -> None:
    """A manifest whose counts or weights contradict each other is refused, in one line naming the key:
    each shard entry well-formed (path, num_rows, num_episodes <= num_rows, bytes, sha256, the checksum
    pin); a dataset's num_transitions = the rows of its shards, num_trajectories = their episodes; the
    weights name exactly the datasets, are finite, >= 0, not all 0; effective_weights (and
    unbalanced_weights) = what the weights and num_transitions give. Metadata only: no shard is opened
    (the reader checks each shard against its entry as it opens it)."""
    datasets = manifest["datasets"]
    seen: dict[str, str] = {}
    for name, ds in datasets.items():
        key = f"datasets.{name}"
        if not isinstance(ds, dict) or not isinstance(ds.get("shards"), list):
            raise ManifestError(f"{path}: {key}.shards is not a list")
        for i, s in enumerate(ds["shards"]):
            k = f"{key}.shards[{i}]"
            if not isinstance(s, dict) or not isinstance(s.get("path"), str):
                raise ManifestError(f"{path}: {k}.path is missing")
            for field in ("num_rows", "bytes"):
                if not _count(s.get(field)):
                    raise ManifestError(f"{path}: {k}.{field} must be a count >= 0, got {s.get(field)!r}")
            if "num_episodes" in s and not (
                _count(s["num_episodes"])
                and s["num_episodes"] <= s["num_rows"]
                and (s["num_episodes"] > 0) == (s["num_rows"] > 0)
            ):
                raise ManifestError(
                    f"{path}: {k}.num_episodes is {s['num_episodes']!r} for {s['num_rows']} rows (num_rows)"
                )
            for field in ("sha256", "checksums_sha256"):
                if (field == "sha256" or field in s) and not (
                    isinstance(s.get(field), str) and SHA256.fullmatch(s[field])
                ):
                    raise ManifestError(f"{path}: {k}.{field} is not a sha256 hex digest, got {s.get(field)!r}")
            if s["path"] in seen:
                raise ManifestError(f"{path}: {k}.path {s['path']!r} is also {seen[s['path']]}.path")
            seen[s["path"]] = k
        rows = sum(s["num_rows"] for s in ds["shards"])
        if ds.get("num_transitions") != rows:
            raise ManifestError(
                f"{path}: {key}.num_transitions is {ds.get('num_transitions')!r}, its shards hold {rows} rows "
                f"({key}.shards[].num_rows)"
            )
        if "num_trajectories" in ds and all("num_episodes" in s for s in ds["shards"]):
            episodes = sum(s["num_episodes"] for s in ds["shards"])
            if ds["num_trajectories"] != episodes:
                raise ManifestError(
                    f"{path}: {key}.num_trajectories is {ds['num_trajectories']!r}, its shards hold {episodes} "
                    f"episodes ({key}.shards[].num_episodes)"
                )
    weights = manifest.get("weights")
    if not isinstance(weights, dict):
        raise ManifestError(f"{path}: no 'weights' table")
    for name in datasets:
        if name not in weights:
            raise ManifestError(f"{path}: weights has no entry for dataset '{name}' (datasets.{name})")
    for name, w in weights.items():
        if name not in datasets:
            raise ManifestError(f"{path}: weights.{name} names no dataset of the manifest (datasets)")
        if not (isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) and w >= 0):
            raise ManifestError(f"{path}: weights.{name} must be a finite number >= 0, got {w!r}")
    if not any(weights.values()):
        raise ManifestError(f"{path}: weights are all 0")
    transitions = {n: d["num_transitions"] for n, d in datasets.items()}
    for field, balance in (("effective_weights", True), ("unbalanced_weights", False)):
        given = manifest.get(field)
        if given is None:
            continue
        if not isinstance(given, dict) or set(given) != set(datasets):
            raise ManifestError(f"{path}: {field} must name exactly the datasets {sorted(datasets)}")
        try:
            expected = effective_weights(weights, transitions, balance)
        except ValueError as e:
            raise ManifestError(f"{path}: {field}: {e} (weights, datasets.*.num_transitions)") from None
        for name, w in sorted(given.items()):
            if not (
                isinstance(w, (int, float)) and math.isclose(w, expected[name], rel_tol=WEIGHT_TOLERANCE, abs_tol=1e-15)
            ):
                source = "weights x num_transitions" if balance else "weights"
                raise ManifestError(
                    f"{path}: {field}.{name} is {w!r}, its {source} give {expected[name]!r} "
                    f"(weights.{name}, datasets.{name}.num_transitions)"
                )


class SyntheticDataWarning(UserWarning):
    """The export was made from the built-in sample corpus (synthetic episodes), not real data."""


_warned: set[str] = set()


def warn_if_synthetic(manifest: dict, out_dir: str) -> None:
    """One warning per export and process when the manifest says the data is synthetic (construction
    happens once, in the main process: DataLoader workers do not repeat it)."""
    if manifest.get("synthetic") is True and out_dir not in _warned:
        _warned.add(out_dir)
        synthetic = sorted(n for n, i in (manifest.get("inputs") or {}).items() if (i or {}).get("synthetic"))
        which = f" (datasets {', '.join(synthetic)})" if synthetic else ""
        warnings.warn(
            f"{out_dir}: this export was made from the built-in synthetic sample corpus{which}: "
            "not real robot data, for trying the tools only",
            SyntheticDataWarning,
            stacklevel=3,
        )


def read_statistics(out: str, manifest: dict) -> tuple[dict, str]:
    """The export's dataset_statistics.json and its path; refused in one line when it cannot be read or
    changed since the export (its sha256 in the manifest)."""
    path = files.join(out, manifest.get("statistics", STATISTICS_FILE))
    try:
        stats = read_json(path)
    except (OSError, ValueError) as e:
        raise ManifestError(f"{path}: cannot read the export's statistics ({e})") from None
    if manifest.get("statistics_sha256") not in (None, sha256_of(stats)):
        raise ManifestError(f"{path}: changed since the export (sha256 does not match the manifest)")
    return stats, path


def shard_path(out_dir: str, shard: dict) -> str:
    return files.join(out_dir, shard["path"])


def verify_manifest(out_dir: str, check_hashes: bool = True) -> dict:
    """The manifest of out_dir, after checking that every shard it lists is there with its size and,
    with check_hashes, its sha256 (reads every byte: for tools that rewrite an export, and tests; the
    trainer's readers check what they read as they read it, and `python -m shards.verify` everything)."""
    manifest = load_manifest(out_dir)
    for name, ds in manifest["datasets"].items():
        for s in ds["shards"]:
            shard = shard_path(out_dir, s)
            if not files.exists(shard):
                raise ManifestError(f"shard {s['path']} of dataset '{name}' is missing")
            size = files.size(shard)
            if size != s["bytes"]:
                raise ManifestError(
                    f"shard {s['path']} of dataset '{name}' changed: {size} bytes, manifest says {s['bytes']}"
                )
            if check_hashes and files.sha256_file(shard) != s["sha256"]:
                raise ManifestError(
                    f"shard {s['path']} of dataset '{name}' changed: sha256 does not match the manifest"
                )
    return manifest


def owned_shard_path(out_dir: str, relpath) -> str:
    """The full path of a shard a manifest lists, when it lies under OUT/shards/; a ManifestError
    otherwise. A manifest is data: an absolute path, `..`, a URL or a link inside OUT/shards that
    leads out of it never names a file to rewrite or remove."""
    bad = ManifestError(f"{files.join(out_dir, MANIFEST_FILE)}: shard path {relpath!r} is not under {out_dir}/shards")
    if not isinstance(relpath, str) or "://" in relpath or "\\" in relpath or relpath.startswith("/"):
        raise bad
    norm = posixpath.normpath(relpath)
    if not norm.startswith("shards/") or norm.split("/")[1] in ("", ".."):
        raise bad
    full = files.join(out_dir, norm)
    local = files.local_path(full)
    if local is not None:
        import os

        base = os.path.realpath(os.path.join(files.local_path(out_dir), "shards"))
        if not os.path.realpath(local).startswith(base + os.sep):
            raise bad
    return full
