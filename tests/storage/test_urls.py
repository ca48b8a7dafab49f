"""Every command and the trainer's reader on URLs: fsspec's in-memory file system stands in for gs://.

The real Bridge slice is copied to memory://, the whole job runs from there to memory://, and its
shards are byte-identical to the same job run on local paths."""

import json
from pathlib import Path

import fsspec
import numpy as np
import pytest

from grids import inspect
from pipeline import export
from pipeline.run import main
from shards.manifest import verify_manifest
from shards.reader import MixtureDataset
from storage import files
from storage.jsonio import read_json

pytestmark = pytest.mark.slow  # end-to-end runs of the job

ARGS = ["--mixture", "bridge", "--no-depth", "--image-size", "32"]


@pytest.fixture(scope="module")
def memory_data(bridge_root):
    fs = fsspec.filesystem("memory")
    for p in Path(bridge_root).rglob("*"):
        if p.is_file():
            fs.pipe(f"/data/{p.relative_to(bridge_root)}", p.read_bytes())
    yield "memory://data"
    fs.rm("/data", recursive=True)


@pytest.fixture(scope="module")
def runs(memory_data, bridge_root, tmp_path_factory):
    local = tmp_path_factory.mktemp("local") / "out"
    assert main([*ARGS, "--data-dir", str(bridge_root), "--out", str(local)]) == 0
    assert main([*ARGS, "--data-dir", memory_data, "--out", "memory://out"]) == 0
    yield local, "memory://out"
    fsspec.filesystem("memory").rm("/out", recursive=True)


def test_files_layer_round_trip():
    path = "memory://t/a/b.bin"
    files.write_bytes(path, b"abc")
    assert files.exists(path) and files.read_bytes(path) == b"abc" and files.size(path) == 3
    assert files.glob("memory://t/a/*.bin") == [path]
    files.rename(path, "memory://t/c.bin")
    assert not files.exists(path) and files.read_bytes("memory://t/c.bin") == b"abc"
    files.remove("memory://t")
    assert not files.exists("memory://t/c.bin")
    with pytest.raises(files.StorageError, match="nosuchscheme://x: unknown URL scheme .nosuchscheme://."):
        files.exists("nosuchscheme://x")


def test_the_job_reads_and_writes_urls_with_the_same_bytes(runs):
    local, url = runs
    m_local, m_url = verify_manifest(str(local)), verify_manifest(url)
    shards = lambda m: [(s["path"], s["sha256"]) for d in m["datasets"].values() for s in d["shards"]]  # noqa: E731
    assert shards(m_url) == shards(m_local) and shards(m_url)
    assert m_url["grid_sha256"] == m_local["grid_sha256"]
    assert read_json(f"{url}/dataset_statistics.json") == json.loads((local / "dataset_statistics.json").read_text())
    assert read_json(f"{url}/report.json")["datasets"]["bridge_orig"]["episodes_read"] == 25


def test_the_reader_streams_from_a_url(runs):
    local, url = runs
    a = [s["episode_id"] + str(int(s["step"])) for s, _ in zip(MixtureDataset(url, mode="epoch", seed=3), range(50))]
    b = [
        s["episode_id"] + str(int(s["step"]))
        for s, _ in zip(MixtureDataset(str(local), mode="epoch", seed=3), range(50))
    ]
    assert a == b
    step = next(iter(MixtureDataset(url, chunk=3, decode_images=True, verify=True)))
    assert step["image"].shape == (32, 32, 3) and step["action_chunk"].shape == (3, 7)


def test_inspect_and_export_take_urls(runs, tmp_path, capsys):
    local, url = runs
    manifest = read_json(f"{url}/manifest.json")
    assert inspect.main([f"{url}/{manifest['grid']}", "--data", url, "--out", str(tmp_path / "plots")]) == 0
    assert "token entropy" in capsys.readouterr().out
    assert export.main([url, "--image-size", "24"]) == 0
    new = verify_manifest(url)
    assert new["image_size"] == 24
    step = next(iter(MixtureDataset(url, decode_images=True)))
    assert step["image"].shape == (24, 24, 3)
    assert np.isfinite(step["action"]).all()
