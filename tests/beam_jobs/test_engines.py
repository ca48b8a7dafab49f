"""The same job on every engine gives the same bytes: the real Bridge slice and three sample datasets,
in-process, in 1/2/3 local processes, on a dask.distributed cluster of two worker processes (one of
them killed mid-run in one test) and through Beam's portable runner with an external worker pool.
Every server binds 127.0.0.1 and is stopped by the test."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.report import output_digests as hashes
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

DATASETS = "bridge_orig=1,kuka=1,roboturk=1,toto=0.5"
VENV_BIN = Path(sys.executable).parent
ENV = {
    **os.environ,
    "PYTHONPATH": str(ROOT),
    "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # a worker pool starts `python` from PATH
    "SPATIAL_PIPELINE_TASK_EPISODES": "2",  # many small tasks: the work can spread
}


def run_job(data, out, *extra, timeout=600, check=True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pipeline.run", "--datasets", DATASETS, "--data-dir", str(data), "--out", str(out),
           "--no-depth", "--image-size", "32", *extra]  # fmt: skip
    r = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)
    if check:
        assert r.returncode == 0, r.stderr[-4000:]
    return r


def encoded_by(stderr: str) -> list[int]:
    m = re.search(r"episode\(s\) encoded by (\d+) worker process\(es\) \(([\d/]+)\)", stderr)
    assert m, stderr[-3000:]
    return [int(n) for n in m.group(2).split("/")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(procs) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()


@pytest.fixture(scope="module")
def data(bridge_root, sample_corpus, tmp_path_factory):
    """One data root with the real Bridge slice and three sample datasets (links, nothing copied)."""
    root = tmp_path_factory.mktemp("engines") / "data"
    root.mkdir()
    (root / "bridge_dataset").symlink_to(bridge_root / "bridge_dataset")
    for name in ("kuka", "roboturk", "toto"):
        (root / name).symlink_to(sample_corpus / name)
    return root


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("engines") / "in_process"
    r = run_job(data, out)
    assert encoded_by(r.stderr) == [31]  # 25 Bridge episodes + 2 + 2 + 2, one process
    return hashes(out)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_local_processes_give_the_same_bytes(data, reference, tmp_path, workers):
    out = tmp_path / "out"
    r = run_job(data, out, "--", "--direct_running_mode=multi_processing", f"--direct_num_workers={workers}")
    assert hashes(out) == reference
    assert sum(encoded_by(r.stderr)) == 31


@pytest.fixture()
def dask_cluster(tmp_path):
    """A scheduler and two single-threaded worker processes on 127.0.0.1 (no nanny: a killed worker stays dead)."""
    scheduler_file = tmp_path / "scheduler.json"
    dask = str(VENV_BIN / "dask")
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(scheduler_file)], cwd=ROOT, env=ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]  # fmt: skip
    try:
        deadline = time.time() + 60
        while not scheduler_file.exists() and time.time() < deadline:
            time.sleep(0.2)
        import json

        address = json.loads(scheduler_file.read_text())["address"]
        for i in range(2):
            procs.append(subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--no-nanny", "--name", f"w{i}",
                                           "--host", "127.0.0.1", "--no-dashboard"], cwd=ROOT, env=ENV,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))  # fmt: skip
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        yield address, procs[1:]
    finally:
        stop(procs)


def test_dask_cluster_gives_the_same_bytes_and_splits_the_work(data, reference, dask_cluster, tmp_path):
    address, _ = dask_cluster
    out = tmp_path / "out"
    r = run_job(data, out, "--runner", "dask", "--dask-address", address)
    assert hashes(out) == reference
    split = encoded_by(r.stderr)
    assert len(split) == 2 and sum(split) == 31 and min(split) > 0, split  # both workers encoded episodes


def test_a_worker_killed_mid_run(data, reference, dask_cluster, tmp_path):
    address, workers = dask_cluster
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "pipeline.run", "--datasets", DATASETS, "--data-dir", str(data), "--out", str(out),
           "--no-depth", "--image-size", "32", "--runner", "dask", "--dask-address", address]  # fmt: skip
    env = {**ENV, "SPATIAL_PIPELINE_TASK_EPISODES": "1"}
    job = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and job.poll() is None:
        if len(list(out.glob(".work/export/*/*.json"))) >= 3:  # the export is under way on the cluster
            workers[0].send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    _, err = job.communicate(timeout=600)
    assert workers[0].poll() is not None, "the export finished before a worker could be killed"
    if job.returncode != 0:  # it may fail, but with one clear line, and then resume
        assert [x for x in err.splitlines() if x.startswith("error:")], err[-3000:]
        r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
    assert hashes(out) == reference


def test_portable_runner_with_an_external_worker_pool(data, reference, tmp_path):
    port = free_port()
    pool = subprocess.Popen([sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                             f"--service_port={port}"], cwd=ROOT, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        out = tmp_path / "out"
        run_job(data, out, "--", "--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=EXTERNAL",
                f"--environment_config=localhost:{port}")  # fmt: skip
        assert hashes(out) == reference
    finally:
        stop([pool])


def test_depth_step_on_the_dask_cluster(bridge_root, dask_cluster, tmp_path):
    """Every stage, depth included (a tiny random ZoeDepth on CPU: its output is not depth)."""
    import numpy as np
    import pyarrow as pa

    from bench.depth import build_random_zoedepth
    from depth.codec import decode_depth

    model = build_random_zoedepth(tmp_path / "tiny", tiny=True)
    args = ["--mixture", "bridge", "--data-dir", str(bridge_root), "--image-size", "32", "--depth-model", str(model)]
    cmd = [sys.executable, "-m", "pipeline.run", *args]
    local = subprocess.run([*cmd, "--out", str(tmp_path / "local")], cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert local.returncode == 0, local.stderr[-3000:]
    address, _ = dask_cluster
    r = subprocess.run([*cmd, "--out", str(tmp_path / "dask"), "--runner", "dask", "--dask-address", address],
                       cwd=ROOT, env=ENV, capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(encoded_by(r.stderr)) == 2

    def table(out):
        (shard,) = sorted((out / "shards" / "bridge_orig").glob("*.arrow"))
        with pa.memory_map(str(shard)) as f:
            return pa.ipc.open_file(f).read_all()

    a, b = table(tmp_path / "local"), table(tmp_path / "dask")
    assert a.num_rows == b.num_rows == 200
    for name in a.column_names:
        if name != "depth":
            assert a.column(name).equals(b.column(name)), name
    # depth: the same model on the same frames; float reductions may round 1 mm apart across processes
    da = np.stack([decode_depth(x) for x in a.column("depth").to_pylist()]).astype(int)
    db = np.stack([decode_depth(x) for x in b.column("depth").to_pylist()]).astype(int)
    assert da.shape == (200, 32, 32) and np.abs(da - db).max() <= 1
