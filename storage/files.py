"""One file layer for every command, Beam job and reader: local paths and URLs alike.

A path is a plain string: a local path, or a URL whose scheme fsspec knows (gs://, s3://,
memory://, ...). Remote schemes need their fsspec package on the machine (gcsfs for gs://, a
main dependency); a missing one is a one-line StorageError naming the package to install. Local
paths take the short way through os (memory-mapping, cheap stat); everything else goes through
fsspec.

Every failure is a StorageError whose message is one line naming the path: a URL that does not
answer within URL_TIMEOUT seconds (no network, a firewalled or unreachable endpoint), a refused
request (no permission), a local path that is a directory, a FIFO or a device where a file is
read (reading a FIFO or /dev/zero would block or never end). gs:// uses gcsfs's plain JSON-API
file system with bounded connect/read timeouts and its logging (and aiohttp's) quieted; without
Google credentials on the machine (GOOGLE_APPLICATION_CREDENTIALS, `gcloud auth
application-default login`, a GCE metadata server) it reads anonymously, as public buckets such
as gs://gresearch/robotics allow, instead of probing for credentials for many seconds.

Writes are atomic where the store allows: a local file is written under a temporary name and
renamed; an object store makes an object visible only once it is complete.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import posixpath
import shutil
import stat
import uuid
from typing import IO

import fsspec
from fsspec.asyn import AsyncFileSystem
from fsspec.exceptions import FSTimeoutError
from fsspec.registry import known_implementations
from fsspec.registry import registry as imported_implementations

# Seconds a URL's store has to answer one metadata request (connect included) before the command
# stops with one line; gcsfs alone would retry a refused connection for about 35 s and wait on a
# silent one for 5 minutes per try.
URL_TIMEOUT = float(os.environ.get("SPATIAL_PIPELINE_URL_TIMEOUT", 10))
LONG_TIMEOUT = 600.0  # listings, recursive deletes and server-side copies: many requests
READ_TIMEOUT = 120.0  # one data request of an open file with no byte arriving

# gs:// through gcsfs's plain GCS JSON-API class: its experimental default subclass asks a gRPC
# control plane for every bucket's layout first (seconds, and warnings, without credentials).
for _scheme in ("gs", "gcs"):
    fsspec.register_implementation(
        _scheme, "gcsfs.core.GCSFileSystem", clobber=True, errtxt="gs:// URLs need the package gcsfs"
    )
for _name in ("gcsfs", "aiohttp"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)  # their retries and tracebacks are not our message


class StorageError(OSError):
    """A path this machine cannot reach or read; the message is one line naming the path and why."""


def is_url(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def _local(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path


def scheme_of(path: str) -> str:
    return path.split("://", 1)[0] if is_url(path) else "file"


def one_line(e: BaseException) -> str:
    """An exception's message on one line (its type's name when it has none), for one-line errors."""
    text = " ".join(str(e).split())
    return text or type(e).__name__


def _google_credentials_configured() -> bool:
    """Whether google-auth would find credentials without asking a metadata server over the network:
    the environment variable, gcloud's application-default file, or a GCE machine (its metadata server)."""
    if os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"):
        return True
    config = os.environ.get("CLOUDSDK_CONFIG") or os.path.join(os.path.expanduser("~"), ".config", "gcloud")
    if os.path.isfile(os.path.join(config, "application_default_credentials.json")):
        return True
    try:
        with open("/sys/class/dmi/id/product_name") as f:  # how google-auth itself tells a GCE machine on Linux
            return f.read().strip().startswith("Google")
    except OSError:
        return False


def _options(scheme: str) -> dict:
    """File-system arguments of a URL scheme: bounded timeouts, and anonymous gs:// reads without
    credentials. Options the user set in fsspec's configuration (FSSPEC_GS_TOKEN=...) win."""
    if scheme not in ("gs", "gcs"):
        return {}
    import aiohttp  # gcsfs's HTTP client

    configured = {**fsspec.config.conf.get("gs", {}), **fsspec.config.conf.get("gcs", {})}
    opts = {"requests_timeout": aiohttp.ClientTimeout(total=None, sock_connect=URL_TIMEOUT, sock_read=READ_TIMEOUT)}
    if "token" not in configured and not _google_credentials_configured():
        opts["token"] = "anon"
    return {k: v for k, v in opts.items() if k not in configured}


def _fs(path: str):
    scheme = scheme_of(path)
    known = known_implementations.get(scheme)
    try:
        fs, stripped = fsspec.core.url_to_fs(path, **_options(scheme))
    except ImportError:
        package = (known or {}).get("class", scheme).split(".")[0]
        raise StorageError(
            f"{path}: {scheme}:// URLs need the package '{package}', not installed here (pip install {package})"
        ) from None
    except ValueError as e:
        if known is None and scheme not in imported_implementations:
            raise StorageError(f"{path}: unknown URL scheme '{scheme}://' (no fsspec file system for it)") from None
        raise StorageError(f"{path}: cannot open this URL ({one_line(e)})") from None
    return fs, stripped


def _remote(path: str, method: str, *args, timeout: float = URL_TIMEOUT, **kw):
    """fs.<method>(stripped path, ...) on a URL, within `timeout` seconds, every failure one line.
    FileNotFoundError stays itself (callers ask "is it there?")."""
    fs, p = _fs(path)
    if isinstance(fs, AsyncFileSystem) and not fs.asynchronous:
        kw["timeout"] = timeout  # fsspec's sync wrappers cancel the request when it runs out
    try:
        return getattr(fs, method)(p, *args, **kw)
    except FileNotFoundError:
        raise
    except FSTimeoutError:
        raise StorageError(
            f"{path}: no answer within {timeout:.0f} s (no network, or the store is unreachable; "
            "SPATIAL_PIPELINE_URL_TIMEOUT sets the limit)"
        ) from None
    except StorageError:
        raise
    except Exception as e:  # aiohttp, google-auth and the store's own errors: many kinds, one line
        raise StorageError(f"{path}: {one_line(e)}") from None


def in_chain(e: BaseException | None, test) -> BaseException | None:
    """The first exception of e's chain (its causes and contexts) for which test() holds: a runner
    re-raises a worker's error wrapped in its own."""
    while e is not None:
        if test(e):
            return e
        e = e.__cause__ or e.__context__
    return None


def storage_error_in(e: BaseException | None) -> StorageError | None:
    """The StorageError anywhere in an exception's chain."""
    return in_chain(e, lambda x: isinstance(x, StorageError))


def _readable_local(path: str) -> str:
    """A local path that can be read as a file: a directory, FIFO or device is refused with one line
    (opening a FIFO blocks until a writer comes; /dev/zero never ends)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", path) from None
    except OSError as e:
        raise StorageError(f"{path}: cannot read ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise StorageError(f"{path}: is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device or socket"
        raise StorageError(f"{path}: is {kind}, not a regular file")
    return path


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
    return bool(_remote(path, "exists"))


def isdir(path: str) -> bool:
    if not is_url(path):
        return os.path.isdir(_local(path))
    return bool(_remote(path, "isdir"))


def size(path: str) -> int:
    if not is_url(path):
        return os.path.getsize(_local(path))
    return int(_remote(path, "size"))


def modified(path: str) -> str:
    """The modification time as the store reports it (a string: stores differ in kind)."""
    if not is_url(path):
        return str(os.stat(_local(path)).st_mtime_ns)
    info = _remote(path, "info")
    return str(info.get("mtime") or info.get("updated") or info.get("LastModified") or info.get("created") or "")


def open_file(path: str, mode: str = "rb") -> IO:
    """A file object; opening for writing creates the parent directories of a local path. Reading
    refuses what is not a regular file (one line); a URL's store must answer within URL_TIMEOUT."""
    if not is_url(path):
        path = _local(path)
        if "w" in mode or "a" in mode:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        else:
            _readable_local(path)
        return open(path, mode)
    if "r" in mode:
        _remote(path, "info")  # first contact within the limit: the file object's own requests retry long
    fs, p = _fs(path)
    try:
        return fs.open(p, mode)
    except Exception as e:
        raise StorageError(f"{path}: {one_line(e)}") from None


def read_bytes(path: str, max_bytes: int | None = None, what: str = "file") -> bytes:
    """The file's bytes; with max_bytes, a larger file is refused before it is read (a document such as
    a grid or YAML file that is gigabytes long is a wrong path, not something to load into memory)."""
    if max_bytes is not None:
        n = size(path)
        if n > max_bytes:
            raise StorageError(f"{path}: {n} bytes, more than a {what} can be ({max_bytes})")
    with open_file(path, "rb") as f:
        return f.read()


def read_text(path: str, max_bytes: int | None = None, what: str = "file") -> str:
    """The file as UTF-8 text; bytes that are not UTF-8 are a one-line StorageError naming where."""
    data = read_bytes(path, max_bytes, what)
    try:
        return data.decode()
    except UnicodeDecodeError as e:
        raise StorageError(f"{path}: not UTF-8 text (byte {e.start}: {data[e.start : e.start + 1]!r})") from None


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
    _remote(src, "mv", _fs(dst)[1], timeout=LONG_TIMEOUT)


def remove(path: str) -> None:
    """Delete a file or a whole directory tree; a missing path is fine."""
    if not is_url(path):
        path = _local(path)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.remove(path)
        return
    if exists(path):
        _remote(path, "rm", recursive=True, timeout=LONG_TIMEOUT)


def glob(pattern: str) -> list[str]:
    """Paths matching a glob pattern, sorted, in the form the pattern was given (URL or local)."""
    if not is_url(pattern):
        import glob as _glob

        return sorted(_glob.glob(_local(pattern)))
    p = _fs(pattern)[1]
    scheme, rest = pattern.split("://", 1)
    added = p[: len(p) - len(rest)] if p.endswith(rest) else ""  # e.g. the "/" that memory:// roots paths at
    return sorted(f"{scheme}://{m[len(added) :]}" for m in _remote(pattern, "glob", timeout=LONG_TIMEOUT))


def glob_in(directory: str, pattern: str) -> list[str]:
    """Paths under `directory` matching a relative glob `pattern` ("*/*.tmp-*"), sorted. The directory
    is taken literally: a user's path may hold `[`, `*` or `?`, which glob() would read as a pattern."""
    parts = pattern.split("/")
    if not is_url(directory):
        import glob as _glob

        return sorted(_glob.glob(os.path.join(_glob.escape(_local(directory)), *parts)))
    import fnmatch

    directory = directory.rstrip("/")
    root = _fs(directory)[1].rstrip("/")
    if not _remote(directory, "isdir"):  # bounded in time, failures one line, as every URL call
        return []
    out = []
    for found in _remote(directory, "find", maxdepth=len(parts), timeout=LONG_TIMEOUT):
        rel = found[len(root) + 1 :].split("/")
        if len(rel) == len(parts) and all(fnmatch.fnmatchcase(r, p) for r, p in zip(rel, parts)):
            out.append(join(directory, *rel))
    return sorted(out)


def sha256_file(*paths: str, block: int = 1 << 22) -> str:
    """sha256 of a file's bytes (of several files' bytes one after the other)."""
    h = hashlib.sha256()
    for path in paths:
        with open_file(path, "rb") as f:
            for chunk in iter(lambda: f.read(block), b""):
                h.update(chunk)
    return h.hexdigest()
