"""An output directory belongs to one mixture, and to one run at a time.

OUT/.lock names the run that holds the output (pid, host, start). A second run on the same OUT
stops with one line naming the holder; a lock whose process is gone (on this host) is taken over
and said so. An OUT that holds another mixture's export, an export read from other data roots or
one tokenized with a given grid is refused, never silently replaced (--overwrite replaces it).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator

from pipeline.context import RunError, log
from shards.manifest import MANIFEST_FILE, ManifestError, grid_relpath, load_manifest, owned_shard_path
from storage import files

LOCK_FILE = ".lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def existing_manifest(out: str) -> dict | None:
    """The manifest of the export already in OUT; None when there is none (or none of ours)."""
    if not files.exists(files.join(out, MANIFEST_FILE)):
        return None
    try:
        return load_manifest(out, check=False)  # an older export of ours too
    except ManifestError:
        return None  # not a finished export of ours: the run will replace it


def _described(entry: dict) -> str:
    where = entry.get("path") or entry.get("root") or "?"
    return f"{where} ({'the built-in sample corpus: synthetic' if entry.get('synthetic') else 'real data'})"


def check_output(plan) -> None:
    """Refuse (one line, exit 2, nothing changed) a run that would replace the export in OUT when it
    is another mixture's, was read from other data (another root: the sample corpus counts as one),
    or is tokenized with a given grid this run does not give. --overwrite replaces it anyway."""
    out, options = plan.out, plan.options
    manifest = existing_manifest(out)
    if manifest is None or options.overwrite:
        return
    keep = "choose another --out, or add --overwrite to replace it (nothing was changed)"
    theirs = manifest.get("mixture")
    if theirs != plan.mixture.name:
        raise RunError(f"--out '{out}' holds the export of mixture '{theirs}', not '{plan.mixture.name}': {keep}")
    inputs = manifest.get("inputs") if isinstance(manifest.get("inputs"), dict) else {}
    for name, ds in plan.datasets.items():
        was = inputs.get(name)
        if not isinstance(was, dict) or not was.get("path") or was["path"] == ds.directory:
            continue
        now = {"path": ds.directory, "synthetic": plan.synthetic(name)}
        raise RunError(
            f"--out '{out}' holds dataset '{name}' read from {_described(was)}; this run reads it from "
            f"{_described(now)}: give the same data dir to update that export, or {keep}"
        )
    grid = manifest.get("grid")
    source = manifest.get("grid_source") if isinstance(manifest.get("grid_source"), dict) else {}
    given = source.get("kind") == "given" or (grid is not None and grid != grid_relpath(plan.mixture.name))
    if given and not options.grid and "export" in options.stages:
        made = f", made by {source['made_by']}" if source.get("made_by") else ""
        raise RunError(
            f"--out '{out}' is tokenized with a given grid ({grid}{made}), not a fitted one: add "
            f"--grid {files.join(out, grid)} to keep it, or --overwrite to fit a new grid"
        )


def previous_shards(out: str) -> set[str]:
    """The shards the export in OUT lists, those under OUT/shards only: nothing else is ours to
    remove (a path outside, e.g. `../x` or a link leading out, is said and left alone)."""
    manifest = existing_manifest(out)
    if manifest is None:
        return set()
    found = set()
    for d in manifest["datasets"].values():
        for s in d.get("shards", []) if isinstance(d, dict) else []:
            try:
                found.add(owned_shard_path(out, s.get("path") if isinstance(s, dict) else s))
            except ManifestError as e:
                log(f"note: {e}: left alone")
    return found


@contextlib.contextmanager
def hold(out: str) -> Iterator[None]:
    """Hold OUT's lock for the duration of a run."""
    path = files.join(out, LOCK_FILE)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    while not files.create_new(path, json.dumps(me).encode()):
        try:
            holder = json.loads(files.read_text(path))
            pid, host = int(holder["pid"]), str(holder["host"])
        except (OSError, ValueError, KeyError, TypeError):
            holder, pid, host = {}, -1, "?"
        if host == me["host"] and not _alive(pid):
            log(f"note: taking over {path}: the run that held it (pid {pid}) is gone")
            files.remove(path)
            continue
        raise RunError(
            f"--out '{out}' is in use by another run (pid {pid} on {host}, since {holder.get('started', '?')}): "
            f"wait for it to finish, or delete {path} if that run is gone"
        )
    try:
        yield
    finally:
        files.remove(path)
