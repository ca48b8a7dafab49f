"""gs:// without network: every command that takes a URL ends within 30 s with one error line, never a
hang or a traceback. Without internet here, gcsfs is pointed (STORAGE_EMULATOR_HOST) at two local
endpoints on 127.0.0.1: a port that refuses connections, and a socket this test holds open that accepts
and never answers. A URL scheme whose file system is not installed is one line naming the package."""

import os
import socket
import subprocess
import sys
import time

import pytest

from storage import files
from tests.conftest import ROOT

LIMIT = 30.0


@pytest.fixture(scope="module")
def endpoints():
    """(refusing, silent) endpoint URLs; the silent socket accepts connections and never replies."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    refusing = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()  # nothing listens there any more: connections are refused
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    yield refusing, f"http://127.0.0.1:{silent.getsockname()[1]}"
    silent.close()


def launch(args, endpoint, cwd, timeout_env=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "STORAGE_EMULATOR_HOST": endpoint}
    env.pop("SPATIAL_PIPELINE_URL_TIMEOUT", None)
    if timeout_env:
        env["SPATIAL_PIPELINE_URL_TIMEOUT"] = timeout_env
    cmd = [sys.executable, *args]
    return time.monotonic(), subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(started):
    t0, proc = started
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"{proc.args} still running after 120 s (a hang)")
    return time.monotonic() - t0, proc.returncode, out, err


def assert_one_line(result, what, url_part="gs://"):
    seconds, rc, out, err = result
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert rc != 0 and "Traceback" not in err, (what, rc, err[-3000:])
    assert len(errors) == 1 and url_part in errors[0], (what, err[-3000:])
    return seconds


def test_the_main_job_fails_in_one_line_within_30_s(endpoints, tmp_path):
    """The default limit, one process at a time (start-up included), against both endpoints."""
    for endpoint, kind in zip(endpoints, ("refused", "silent")):
        args = ["-m", "pipeline.run", "--mixture", "bridge", "--data-dir", "gs://gresearch/robotics",
                "--out", str(tmp_path / kind), "--no-depth"]  # fmt: skip
        result = finish(launch(args, endpoint, tmp_path))
        seconds = assert_one_line(result, kind)
        assert seconds < LIMIT, (kind, seconds)
        assert f"gs://gresearch/robotics: no answer within {files.URL_TIMEOUT:.0f} s" in result[3]


def test_every_url_command_fails_in_one_line(endpoints, bridge_root, tmp_path):
    """Every other command that takes a URL, against the silent endpoint (the worse: a refused connection is
    retried, a silent one waits), all at once with a 3 s limit: the same code path as the default limit."""
    silent = endpoints[1]
    grid = tmp_path / "grid.json"
    from grids.grid import uniform_grid

    grid.write_text(uniform_grid().dumps())
    reader = "from shards.reader import MixtureDataset\nMixtureDataset('gs://bucket/out')"
    runs = {
        "run --out": ["-m", "pipeline.run", "--mixture", "bridge", "--data-dir", str(bridge_root),
                      "--out", "gs://bucket/out", "--no-depth"],
        "export": ["-m", "pipeline.export", "gs://bucket/out", "--image-size", "64"],
        "inspect --data": ["-m", "grids.inspect", str(grid), "--data", "gs://bucket/out", "--out", str(tmp_path / "p1")],
        "inspect grid": ["-m", "grids.inspect", "gs://bucket/g.json", "--out", str(tmp_path / "p2")],
        "rediscretize --data": ["-m", "grids.rediscretize", "--base", str(grid), "--data", "gs://bucket/out",
                                "--out", str(tmp_path / "new.json")],
        "reader": ["-c", reader],
    }  # fmt: skip
    started = {what: launch(args, silent, tmp_path, timeout_env="3") for what, args in runs.items()}
    for what, s in started.items():
        result = finish(s)
        if what == "reader":  # a library call: its exception is the one line (a traceback comes with it)
            seconds, rc, out, err = result
            last = err.strip().splitlines()[-1]
            assert rc != 0 and last.startswith(
                ("storage.files.StorageError: gs://", "shards.manifest.ManifestError: gs://")
            ), err
        else:
            assert_one_line(result, what)
        assert "no answer within 3 s" in result[3]


def test_a_missing_file_system_package_is_one_line_naming_it(tmp_path):
    code = (
        "import sys; sys.modules['gcsfs'] = None\n"  # as if gcsfs were not installed
        "from pipeline.run import main\n"
        "sys.exit(main(['--mixture', 'bridge', '--data-dir', 'gs://gresearch/robotics', '--out', 'o']))"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    (line,) = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert "gs:// URLs need the package 'gcsfs', not installed here (pip install gcsfs)" in line


def test_unknown_and_uninstalled_schemes():
    with pytest.raises(files.StorageError, match=r"nosuch://x: unknown URL scheme 'nosuch://'"):
        files.exists("nosuch://x")
    with pytest.raises(files.StorageError, match=r"abfs://c/x: abfs:// URLs need the package 'adlfs'"):
        files.read_bytes("abfs://c/x")


def test_gcs_reads_anonymously_without_credentials(monkeypatch, tmp_path):
    """No credentials on the machine: anonymous (public buckets such as gs://gresearch/robotics allow it),
    without probing a metadata server; credentials present or a token configured: left to gcsfs."""
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))
    on_gce = files._google_credentials_configured()  # a GCE machine has its metadata server
    assert files._options("gs").get("token") == (None if on_gce else "anon")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "key.json"))
    assert "token" not in files._options("gs")
    assert files._options("gs")["requests_timeout"].sock_connect == files.URL_TIMEOUT
    assert files._options("memory") == {}


def test_local_paths_that_are_not_files_are_refused(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, message in [(fifo, "is a FIFO, not a regular file"), ("/dev/zero", "is a device or socket"),
                          (tmp_path, "is a directory, not a file")]:  # fmt: skip
        with pytest.raises(files.StorageError, match=message):
            files.read_bytes(str(path))
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9")
    with pytest.raises(files.StorageError, match=r"not UTF-8 text \(byte 3"):
        files.read_text(str(tmp_path / "latin1.txt"))
    with pytest.raises(FileNotFoundError):
        files.read_bytes(str(tmp_path / "absent"))
