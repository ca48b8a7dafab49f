"""An output directory belongs to one mixture, and to one run at a time.

OUT/.lock names the run that holds the output (pid, host, start). A second run on the same OUT
stops with one line naming the holder; a lock whose process is gone (on this host) is taken over
and said so. An OUT that holds another mixture's export is refused, never overwritten.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator

from pipeline.context import RunError, log
from shards.manifest import MANIFEST_FILE, ManifestError, load_manifest
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


def check_mixture(out: str, mixture: str) -> None:
    """Refuse an OUT whose manifest is another mixture's export."""
    if not files.exists(files.join(out, MANIFEST_FILE)):
        return
    try:
        theirs = load_manifest(out, check=False).get("mixture")  # an older export of ours too
    except ManifestError:
        return  # not a finished export of ours: the run will replace it
    if theirs != mixture:
        raise RunError(
            f"--out '{out}' holds the export of mixture '{theirs}', not '{mixture}': choose another --out "
            "(nothing was changed)"
        )


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
