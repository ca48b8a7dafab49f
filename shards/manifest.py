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
import posixpath

from storage import files

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


def load_manifest(out_dir: str) -> dict:
    """The parsed manifest of an export, with a one-line ManifestError when there is none usable."""
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
    return manifest


def shard_path(out_dir: str, shard: dict) -> str:
    return files.join(out_dir, shard["path"])


def verify_manifest(out_dir: str, check_hashes: bool = True) -> dict:
    """The manifest of out_dir, after checking that every shard it lists is there, unchanged."""
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
