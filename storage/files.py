"""One file layer for every command, Beam job and reader: local paths and URLs alike.

A path is a plain string: a local path, or a URL whose scheme fsspec knows (gs://, s3://,
memory://, ...). Remote schemes need their fsspec package on the machine (gcsfs for gs://);
a missing one is a one-line StorageError naming it. Local paths take the short way through
os (memory-mapping, cheap stat); everything else goes through fsspec.

Writes are atomic where the store allows: a local file is written under a temporary name and
renamed; an object store makes an object visible only once it is complete.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import uuid
from typing import IO

import fsspec


class StorageError(OSError):
    """A path this machine cannot reach; the message names the path and why."""


def is_url(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def _local(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path


def _fs(path: str):
    try:
        fs, stripped = fsspec.core.url_to_fs(path)
    except (ImportError, ValueError) as e:
        raise StorageError(f"{path}: cannot open this kind of URL ({e})") from None
    return fs, stripped


def join(base: str, *parts: str) -> str:
    return posixpath.join(base, *parts) if is_url(base) else os.path.join(_local(base), *parts)


def absolute(path: str) -> str:
    """What a worker on another machine or in another directory reads as the same place."""
    return path if is_url(path) else os.path.abspath(_local(path))


def local_path(path: str) -> str | None:
    """The local file system path, or None for a URL."""
    return None if is_url(path) else _local(path)


def exists(path: str) -> bool:
    if not is_url(path):
        return os.path.exists(_local(path))
    fs, p = _fs(path)
    return fs.exists(p)


def isdir(path: str) -> bool:
    if not is_url(path):
        return os.path.isdir(_local(path))
    fs, p = _fs(path)
    return fs.isdir(p)


def size(path: str) -> int:
    if not is_url(path):
        return os.path.getsize(_local(path))
    fs, p = _fs(path)
    return int(fs.size(p))


def modified(path: str) -> str:
    """The modification time as the store reports it (a string: stores differ in kind)."""
    if not is_url(path):
        return str(os.stat(_local(path)).st_mtime_ns)
    fs, p = _fs(path)
    info = fs.info(p)
    return str(info.get("mtime") or info.get("updated") or info.get("LastModified") or info.get("created") or "")


def open_file(path: str, mode: str = "rb") -> IO:
    """A file object; opening for writing creates the parent directories of a local path."""
    if not is_url(path):
        path = _local(path)
        if "w" in mode or "a" in mode:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        return open(path, mode)
    fs, p = _fs(path)
    return fs.open(p, mode)


def read_bytes(path: str) -> bytes:
    with open_file(path, "rb") as f:
        return f.read()


def read_text(path: str) -> str:
    return read_bytes(path).decode()


def write_bytes(path: str, data: bytes) -> None:
    """Atomic: readers see the old file or the whole new one, never a part."""
    if is_url(path):
        with open_file(path, "wb") as f:
            f.write(data)
        return
    tmp = temporary_name(path)
    with open_file(tmp, "wb") as f:
        f.write(data)
    rename(tmp, path)


def create_new(path: str, data: bytes) -> bool:
    """Write a file only if none is there: True when this call created it. Atomic on a local file
    system (O_EXCL); on an object store a check then a write, the best it offers."""
    if is_url(path):
        if exists(path):
            return False
        write_bytes(path, data)
        return True
    path = _local(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return True


def temporary_name(path: str) -> str:
    """A sibling name unique to this writer; `rename` it onto `path` when complete."""
    return f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def rename(src: str, dst: str) -> None:
    """Replace dst with src (atomic on a local file system)."""
    if not is_url(src):
        os.replace(_local(src), _local(dst))
        return
    fs, s = _fs(src)
    fs.mv(s, _fs(dst)[1])


def remove(path: str) -> None:
    """Delete a file or a whole directory tree; a missing path is fine."""
    if not is_url(path):
        path = _local(path)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.remove(path)
        return
    fs, p = _fs(path)
    if fs.exists(p):
        fs.rm(p, recursive=True)


def glob(pattern: str) -> list[str]:
    """Paths matching a glob pattern, sorted, in the form the pattern was given (URL or local)."""
    if not is_url(pattern):
        import glob as _glob

        return sorted(_glob.glob(_local(pattern)))
    fs, p = _fs(pattern)
    scheme, rest = pattern.split("://", 1)
    added = p[: len(p) - len(rest)] if p.endswith(rest) else ""  # e.g. the "/" that memory:// roots paths at
    return sorted(f"{scheme}://{m[len(added) :]}" for m in fs.glob(p))


def glob_in(directory: str, pattern: str) -> list[str]:
    """Paths under `directory` matching a relative glob `pattern` ("*/*.tmp-*"), sorted. The directory
    is taken literally: a user's path may hold `[`, `*` or `?`, which glob() would read as a pattern."""
    parts = pattern.split("/")
    if not is_url(directory):
        import glob as _glob

        return sorted(_glob.glob(os.path.join(_glob.escape(_local(directory)), *parts)))
    import fnmatch

    fs, root = _fs(directory)
    root = root.rstrip("/")
    if not fs.isdir(root):
        return []
    out = []
    for found in fs.find(root, maxdepth=len(parts)):
        rel = found[len(root) + 1 :].split("/")
        if len(rel) == len(parts) and all(fnmatch.fnmatchcase(r, p) for r, p in zip(rel, parts)):
            out.append(join(directory.rstrip("/"), *rel))
    return sorted(out)


def sha256_file(*paths: str, block: int = 1 << 22) -> str:
    """sha256 of a file's bytes (of several files' bytes one after the other)."""
    h = hashlib.sha256()
    for path in paths:
        with open_file(path, "rb") as f:
            for chunk in iter(lambda: f.read(block), b""):
                h.update(chunk)
    return h.hexdigest()
