"""Reruns do only new work (issue 22): an identical rerun is "up to date" and touches nothing; a
change of weights, normalization or grid re-tokenizes from the frame cache without decoding an
image; adding a dataset encodes only its episodes, removing one encodes nothing. Each result is
compared file by file (sha256) with a fresh run into an empty directory, in-process, in local worker
processes and on a local dask cluster."""

import hashlib
import re
import shutil

import pytest

import beam_jobs.shard_writing
from beam_jobs.frame_cache import read_frames
from grids.grid import uniform_grid
from manifests.registry import load_registry
from pipeline.run import main
from storage.jsonio import read_json, write_json
from tests.depth.test_depth import tiny_zoedepth  # noqa: F401 -- a fixture
from tests.pipeline.test_end_to_end import file_hashes
from tests.pipeline.test_faults import rewrite_records
from tests.pipeline.test_guarantees import bad_frames

pytestmark = pytest.mark.slow  # end-to-end runs of the job

FAST = ["--no-depth", "--image-size", "32"]
MULTI = ["--", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]


@pytest.fixture(scope="module")
def data(bridge_root, sample_corpus, tmp_path_factory):
    """The real Bridge slice with three episodes whose frames do not decode (counted problems the
    cache must reproduce), and sample datasets: taco_play has a wrist camera, droid a camera drawn
    per episode from the seed."""
    root = tmp_path_factory.mktemp("reruns") / "data"
    shutil.copytree(bridge_root / "bridge_dataset", root / "bridge_dataset")
    rewrite_records(root / "bridge_dataset" / "1.0.0" / "bridge_dataset-train.tfrecord-00000-of-00001", bad_frames)
    for name in ("taco_play", "droid", "toto", "kuka"):
        (root / name).symlink_to(sample_corpus / name)
    return root


@pytest.fixture()
def decodes(monkeypatch):
    """Episodes whose frames are decoded (prepare_frames calls) by in-process runs, per camera."""
    calls = []
    real = beam_jobs.shard_writing.prepare_frames

    def counting(frames, size, keep_pixels=False):
        calls.append(len(frames))
        return real(frames, size, keep_pixels=keep_pixels)

    monkeypatch.setattr(beam_jobs.shard_writing, "prepare_frames", counting)
    return calls


def mixture(path, weights: dict) -> list[str]:
    path.write_text("name: rerun\ndatasets:\n" + "".join(f"  {n}: {w}\n" for n, w in weights.items()))
    return ["--mixture", str(path)]


def frames_in(log: str) -> tuple[int, int]:
    """(tasks whose frames came from the cache, tasks encoded) as the export logged them."""
    m = re.search(
        r"(\d+) task\(s\) take their frames from the frame cache \(no image decoded\), (\d+) are encoded", log
    )
    assert m, log[-3000:]
    return int(m.group(1)), int(m.group(2))


def same_as_fresh(out, tmp_path, args, tag):
    fresh = tmp_path / f"fresh-{tag}"
    assert main([*args, "--out", str(fresh)]) == 0
    assert file_hashes(out) == file_hashes(fresh), tag


def cameras(name: str) -> int:
    return 1 + (load_registry().datasets[name].wrist_image is not None)


def test_every_change_does_only_its_new_work_and_gives_a_fresh_runs_bytes(data, tmp_path, decodes, capfd):
    mix = tmp_path / "mix.yaml"
    out = tmp_path / "out"
    common = ["--data-dir", str(data), *FAST]
    weights = {"bridge_orig": 1.0, "taco_play": 1.0, "droid": 0.5}
    args = [*mixture(mix, weights), *common]
    assert main([*args, "--out", str(out)]) == 0
    assert len(decodes) == 25 + 2 * cameras("taco_play") + 2 * cameras("droid")  # every episode once per camera
    report = read_json(str(out / "report.json"))
    assert report["episodes_lost"] == 3 and report["datasets"]["bridge_orig"]["episodes_lost"] == 3

    # identical rerun: up to date in one line, nothing touched (the frame cache neither)
    stamp = {
        p: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest()) for p in out.rglob("*") if p.is_file()
    }
    decodes.clear()
    capfd.readouterr()
    assert main([*args, "--out", str(out)]) == 0
    assert capfd.readouterr().out.startswith(f"up to date: {out} holds the export this command makes")
    assert not decodes
    assert {
        p: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest()) for p in out.rglob("*") if p.is_file()
    } == stamp

    steps = [  # (what, weights, flags, episodes decoded, tasks encoded)
        ("reweight", {**weights, "taco_play": 3.0}, [], 0, 0),
        ("renormalize", {**weights, "taco_play": 3.0}, ["--normalization", "normal"], 0, 0),
        ("add a dataset", {**weights, "taco_play": 3.0, "toto": 1.0}, ["--normalization", "normal"], 2, 1),
        ("remove a dataset", {"bridge_orig": 1.0, "droid": 0.5, "toto": 1.0}, ["--normalization", "normal"], 0, 0),
    ]
    for tag, w, extra, decoded, encoded in steps:
        args = [*mixture(mix, w), *common, *extra]
        decodes.clear()
        capfd.readouterr()
        assert main([*args, "--out", str(out)]) == 0, tag
        cached, fresh_tasks = frames_in(capfd.readouterr().err)
        assert (len(decodes), fresh_tasks) == (decoded, encoded), tag  # toto: 2 episodes of one camera, one task
        assert cached > 0
        same_as_fresh(out, tmp_path, args, tag)
    assert (out / ".cache" / "frames" / "taco_play").is_dir()  # a removed dataset's frames stay: adding it back is free

    grid = tmp_path / "uniform.json"
    write_json(str(grid), uniform_grid().to_json())
    args = [*args, "--grid", str(grid)]
    decodes.clear()
    assert main([*args, "--out", str(out)]) == 0
    assert not decodes
    same_as_fresh(out, tmp_path, args, "regrid")
    assert read_json(str(out / "manifest.json"))["grid_source"]["kind"] == "given"


def test_local_processes_and_a_dask_cluster_take_frames_from_the_cache(data, tmp_path, capfd):
    mix = tmp_path / "mix.yaml"
    out = tmp_path / "out"
    common = ["--data-dir", str(data), *FAST, "--out", str(out)]
    assert main([*mixture(mix, {"bridge_orig": 1.0, "droid": 1.0}), *common]) == 0  # in-process
    capfd.readouterr()
    args = [*mixture(mix, {"bridge_orig": 2.0, "droid": 1.0}), "--data-dir", str(data), *FAST]
    assert main([*args, "--out", str(out), *MULTI]) == 0  # reweight in 2 worker processes
    assert frames_in(capfd.readouterr().err)[1] == 0
    same_as_fresh(out, tmp_path, args, "multi")

    args = [*mixture(mix, {"bridge_orig": 2.0, "droid": 1.0, "kuka": 1.0}), "--data-dir", str(data), *FAST]
    capfd.readouterr()
    assert main([*args, "--out", str(out), "--runner", "dask", "--workers", "2"]) == 0  # add a dataset, on dask
    assert frames_in(capfd.readouterr().err)[1] == 1  # kuka's 2 episodes, in one task
    same_as_fresh(out, tmp_path, args, "dask")


def test_a_shared_cache_serves_other_outputs_and_never_stale_frames(data, tmp_path, monkeypatch, capfd, decodes):
    monkeypatch.chdir(tmp_path)
    cache = tmp_path / "shared-cache"
    base = ["--data-dir", str(data), *FAST, "--cache", str(cache)]
    assert main(["--datasets", "bridge_orig=1", *base]) == 0
    assert len(decodes) == 25
    decodes.clear()
    capfd.readouterr()
    assert main(["--datasets", "bridge_orig=1,kuka=1", *base]) == 0  # another output, the same cache
    assert len(decodes) == 2 and frames_in(capfd.readouterr().err) == (4, 1)
    assert not (tmp_path / "output" / "custom-bridge_orig-1+kuka-1" / ".cache" / "frames").exists()
    entry = sorted((cache / "frames" / "bridge_orig").glob("*/*.0-8.arrow"))[0]
    table, index = read_frames(str(entry))
    assert [e["episode_id"] for e in index["episodes"]] == [f"bridge_dataset-train.tfrecord-00000-of-00001#{i}"
                                                           for i in (0, 3, 5, 6, 7)]  # fmt: skip
    assert {p["episode_id"] for p in index["problems"]} == {f"bridge_dataset-train.tfrecord-00000-of-00001#{i}"
                                                           for i in (1, 2, 4)}  # fmt: skip
    assert table.num_rows == sum(e["rows"] for e in index["episodes"]) and table.column_names == ["image"]

    # other frames in the same files (same names, sizes and steps): new frames, never the cached ones
    shard = data / "bridge_dataset" / "1.0.0" / "bridge_dataset-train.tfrecord-00000-of-00001"
    keep = shard.read_bytes()
    try:

        def swap(i, f):
            frames = f["steps/observation/image_0"].bytes_list.value
            if i == 0:
                frames[1], frames[2] = bytes(frames[2]), bytes(frames[1])

        rewrite_records(shard, swap)
        decodes.clear()
        args = ["--datasets", "bridge_orig=1", *base]
        assert main([*args, "--overwrite"]) == 0
        assert len(decodes) == 25
        assert main([*args[:-2], "--cache", "none", "--out", str(tmp_path / "fresh")]) == 0
        assert file_hashes(tmp_path / "output" / "custom-bridge_orig-1") == file_hashes(tmp_path / "fresh")
        assert not (tmp_path / "fresh" / ".cache" / "frames").exists()
    finally:
        shard.write_bytes(keep)


def test_depth_is_kept_with_the_frames(bridge_root, tiny_zoedepth, tmp_path, monkeypatch, capfd):  # noqa: F811
    from depth.model import DepthEstimator

    predicted = []
    real = DepthEstimator.predict
    monkeypatch.setattr(DepthEstimator, "predict", lambda self, x: predicted.append(len(x)) or real(self, x))
    args = ["--mixture", "bridge", "--data-dir", str(bridge_root), "--image-size", "32", "--split", "train[:3]",
            "--depth-model", str(tiny_zoedepth)]  # fmt: skip
    out = tmp_path / "out"
    assert main([*args, "--out", str(out)]) == 0
    assert sum(predicted) == 24  # 3 episodes, 8 steps each after Bridge's transform
    predicted.clear()
    capfd.readouterr()
    assert main([*args, "--out", str(out), "--normalization", "normal"]) == 0
    assert not predicted and frames_in(capfd.readouterr().err) == (1, 0)
    same_as_fresh(out, tmp_path, [*args, "--normalization", "normal"], "depth")
    assert read_json(str(out / "manifest.json"))["depth"]["units"] == "millimetres"
