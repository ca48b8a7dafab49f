"""What the pipeline promises on hostile input (README, "What is guaranteed"), each case reproduced:
reruns with other settings or other data, concurrent runs, lost episodes, outliers, bad frames,
interrupted runs, names that would be paths, another mixture's output, overlapping splits."""

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pytest

from grids.grid import ActionGrid
from grids.tokenizer import ActionTokenizer
from pipeline.run import main
from shards.manifest import verify_manifest
from storage.jsonio import read_json
from tests.conftest import ROOT
from tests.pipeline.test_faults import NAME, rewrite_records, two_shard_copy
from transforms.frames import decode
from transforms.normalize import normalize

pytestmark = pytest.mark.slow
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def run(data, out, *extra, mixture=("--mixture", "bridge")):
    return main([*mixture, "--data-dir", str(data), "--out", str(out), "--no-depth", "--image-size", "32", *extra])


def table(out, dataset="bridge_orig"):
    m = verify_manifest(str(out))
    tables = []
    for s in m["datasets"][dataset]["shards"]:
        with pa.memory_map(str(out / s["path"])) as f:
            tables.append(pa.ipc.open_file(f).read_all())
    return pa.concat_tables(tables)


def shard_hashes(out):
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("shards/*/*"))}


def one_error_line(capfd) -> str:
    lines = [x for x in capfd.readouterr().err.splitlines() if x.startswith("error:")]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture()
def bridge_copy(bridge_root, tmp_path):
    data = tmp_path / "data"
    return data, two_shard_copy(bridge_root, data)


# ---------------------------------------------------------------- 1. reruns never keep stale shards


def test_rerun_with_other_settings_rewrites_every_shard(bridge_root, tmp_path):
    out = tmp_path / "out"
    assert run(bridge_root, out) == 0
    new = ["--image-size", "24", "--normalization", "normal", "--grid-fit", "empirical"]
    assert main(["--mixture", "bridge", "--data-dir", str(bridge_root), "--out", str(out), "--no-depth", *new]) == 0
    t = table(out)
    assert decode(t.column("image")[0].as_py()).shape == (24, 24, 3)
    stats = read_json(str(out / "dataset_statistics.json"))["bridge_orig"]
    raw = np.stack(t.column("raw_action").to_numpy(zero_copy_only=False))
    action = np.stack(t.column("action").to_numpy(zero_copy_only=False))
    np.testing.assert_array_equal(action, normalize(raw, stats["action"], "normal"))
    grid = ActionGrid.load(str(out / "grids" / "bridge.json"))
    assert grid.distribution == "empirical"
    np.testing.assert_array_equal(np.stack(t.column("action_tokens").to_numpy(zero_copy_only=False)),
                                  ActionTokenizer(grid).encode(action))  # fmt: skip
    fresh = tmp_path / "fresh"
    assert main(["--mixture", "bridge", "--data-dir", str(bridge_root), "--out", str(fresh), "--no-depth", *new]) == 0
    assert shard_hashes(out) == shard_hashes(fresh)


def test_changed_input_is_seen_even_with_the_same_step_counts(bridge_copy, tmp_path):
    data, shard_dir = bridge_copy
    out = tmp_path / "out"
    assert run(data, out) == 0
    before = np.stack(table(out).column("raw_action").to_numpy(zero_copy_only=False))

    def double(i, f):
        if i == 2:
            f["steps/observation/state"].float_list.value[:] = [
                2 * v for v in f["steps/observation/state"].float_list.value
            ]

    rewrite_records(shard_dir / NAME.format(0), double)
    assert run(data, out) == 0
    after = np.stack(table(out).column("raw_action").to_numpy(zero_copy_only=False))
    assert after.shape == before.shape and not np.array_equal(after, before)
    fresh = tmp_path / "fresh"
    assert run(data, fresh) == 0
    assert shard_hashes(out) == shard_hashes(fresh)


def test_export_alone_refuses_statistics_of_other_input(bridge_copy, tmp_path, capfd):
    data, shard_dir = bridge_copy
    out = tmp_path / "out"
    assert run(data, out, "--stages", "stats,grids") == 0
    time.sleep(0.01)
    rewrite_records(shard_dir / NAME.format(1), lambda i, f: None)  # the same content, but a rewritten file
    capfd.readouterr()
    assert run(data, out, "--stages", "export") == 2
    assert "were not computed from its current input" in one_error_line(capfd)
    assert not (out / "manifest.json").exists()


# ---------------------------------------------------------------- 2. one run per output


def test_an_output_in_use_is_refused_and_a_dead_holder_is_taken_over(bridge_root, tmp_path, capfd):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (out / ".lock").write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(), "started": "x"}))
        assert run(bridge_root, out) == 2
        assert f"is in use by another run (pid {holder.pid}" in one_error_line(capfd)
        assert not (out / "manifest.json").exists()
    finally:
        holder.kill()
        holder.wait()
    assert run(bridge_root, out) == 0
    assert "taking over" in capfd.readouterr().err and not (out / ".lock").exists()


def test_two_concurrent_runs_on_one_output(bridge_root, tmp_path):
    out = tmp_path / "out"
    cmds = [[sys.executable, "-m", "pipeline.run", "--mixture", "bridge", "--data-dir", str(bridge_root), "--out",
             str(out), "--no-depth", "--image-size", size] for size in ("64", "96")]  # fmt: skip
    procs = [subprocess.Popen(c, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in cmds]  # fmt: skip
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes in ([0, 0], [0, 2]), results
    if codes == [0, 2]:
        assert any("is in use by another run" in err for code, err in results if code == 2)
    size = read_json(str(out / "manifest.json"))["image_size"]
    images = table(out).column("image").to_pylist()
    assert {decode(x).shape for x in images} == {(size, size, 3)}  # the shards are what the manifest says


# ---------------------------------------------------------------- 3. lost episodes are counted


@pytest.mark.parametrize("damage, lost, reason", [
    ("empty", 25, "the file holds 0 episode(s), dataset_info.json lists 25"),
    ("cut_at_a_record", 7, "the file holds 18 episode(s), dataset_info.json lists 25"),
    ("listed_fewer", 5, "the file holds 5 record(s) more than the 20 dataset_info.json lists"),
    ("listed_more", 5, "the file holds 25 episode(s), dataset_info.json lists 30"),
])  # fmt: skip
def test_shards_that_do_not_hold_what_dataset_info_lists(bridge_copy, tmp_path, capfd, damage, lost, reason):
    data, shard_dir = bridge_copy
    shard = shard_dir / NAME.format(1)
    raw = shard.read_bytes()
    if damage == "empty":
        shard.write_bytes(b"")
    elif damage == "cut_at_a_record":
        pos = 0
        for _ in range(18):
            pos += 16 + int.from_bytes(raw[pos : pos + 8], "little")
        shard.write_bytes(raw[:pos])
    else:
        info = json.loads((shard_dir / "dataset_info.json").read_text())
        info["splits"][0]["shardLengths"][1] = "20" if damage == "listed_fewer" else "30"
        (shard_dir / "dataset_info.json").write_text(json.dumps(info))
    out = tmp_path / "out"
    assert run(data, out) == 0
    report = read_json(str(out / "report.json"))
    (p,) = report["problems"]
    assert reason in p["reason"] and p["episodes_lost"] == lost and p["file"] == str(shard)
    assert "dropped: nothing" not in capfd.readouterr().out
    assert run(data, tmp_path / "strict", "--strict") == 1
    assert reason in one_error_line(capfd)


# ---------------------------------------------------------------- 4. outliers: accurate quantiles, reported


def test_one_absurd_value_is_reported_and_leaves_the_quantiles_alone(bridge_copy, tmp_path, capfd):
    from manifests.registry import load_registry
    from sources.episodes import dataset_episodes, is_problem
    from sources.rlds import open_dataset
    from transforms.statistics import REL_ERROR

    data, shard_dir = bridge_copy

    def outlier(i, f):
        if i == 5:
            f["steps/observation/state"].float_list.value[3 * 7] = 1e30  # x of a reached state: a 1e30 movement

    rewrite_records(shard_dir / NAME.format(0), outlier)
    out = tmp_path / "out"
    assert run(data, out) == 0
    stats = read_json(str(out / "dataset_statistics.json"))["bridge_orig"]["action"]
    cfg = load_registry().datasets["bridge_orig"]
    episodes = [e for e in dataset_episodes(open_dataset(str(data), cfg), cfg) if not is_problem(e)]
    a = np.concatenate([e.action for e in episodes]).astype(np.float64)
    assert np.abs(a).max() >= 1e29  # the outlier is in the data (kept)
    for key, q in (("q01", 0.01), ("q99", 0.99)):  # and the quantiles are as accurate as without it
        exact = np.quantile(a, q, axis=0)
        assert (np.abs(np.array(stats[key]) - exact) <= REL_ERROR * np.abs(exact) + 1e-12).all(), key
    report = read_json(str(out / "report.json"))
    notes = [p for p in report["problems"] if "over 1000x the q01..q99 spread" in p["reason"]]
    assert notes and notes[0]["episodes_lost"] == 0 and "most extreme" in notes[0]["reason"]
    capfd.readouterr()
    assert run(data, tmp_path / "strict", "--strict") == 1
    assert "over 1000x the q01..q99 spread" in one_error_line(capfd)


# ---------------------------------------------------------------- 5. bad frames skip their episode


def bad_frames(i, f):
    images = f["steps/observation/image_0"].bytes_list.value
    good = bytes(images[0])
    if i == 1:
        images[3] = b"not a jpeg at all"
    if i == 2:
        images[2] = good[: len(good) // 2]  # truncated (step 0's frame would not count: Bridge drops step 0)
    if i == 4:  # a header that claims 20000 x 20000 pixels: refused before decoding
        sof = good.find(b"\xff\xc0")
        images[1] = good[: sof + 5] + (20000).to_bytes(2, "big") * 2 + good[sof + 9 :]


def test_bad_frames_skip_their_episode_and_are_counted(bridge_copy, tmp_path, capfd):
    data, shard_dir = bridge_copy
    rewrite_records(shard_dir / NAME.format(0), bad_frames)
    out = tmp_path / "out"
    assert run(data, out) == 0
    report = read_json(str(out / "report.json"))
    bad = {p["episode_id"]: p for p in report["problems"]}
    assert set(bad) == {f"{NAME.format(0)}#{i}" for i in (1, 2, 4)}
    assert "frame 2: not an image" in bad[f"{NAME.format(0)}#1"]["reason"]  # steps counted after the dropped step 0
    assert "frame 1: not a decodable image (image file is truncated" in bad[f"{NAME.format(0)}#2"]["reason"]
    assert (
        "refused undecoded" in bad[f"{NAME.format(0)}#4"]["reason"]
        and "400000000 pixels" in bad[f"{NAME.format(0)}#4"]["reason"]
    )
    assert all(p["episodes_lost"] == 1 for p in bad.values())
    ids = set(table(out).column("episode_id").to_pylist())
    assert len(ids) == 47 and not ids & set(bad)
    capfd.readouterr()
    assert run(data, tmp_path / "strict", "--strict") == 1
    line = one_error_line(capfd)
    assert "bad image" in line and not (tmp_path / "strict" / "manifest.json").exists()


# ---------------------------------------------------------------- 6. interrupted runs always resume


def test_a_run_killed_with_a_broken_index_and_a_stray_temporary_resumes(bridge_root, tmp_path):
    reference = tmp_path / "reference"
    assert run(bridge_root, reference) == 0
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "pipeline.run", "--mixture", "bridge", "--data-dir", str(bridge_root), "--out",
           str(out), "--no-depth", "--image-size", "32"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**ENV, "SPATIAL_PIPELINE_TASK_EPISODES": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if len(list(out.glob(".work/export/*/*.json"))) >= 3:
            proc.kill()
            break
        time.sleep(0.02)
    proc.wait()
    assert not (out / "manifest.json").exists(), "the export finished before it could be killed"
    index = sorted(out.glob(".work/export/*/*.json"))[0]
    index.write_bytes(b"")  # what a full disk did to an index written in place
    stray = out / "shards" / "bridge_orig" / "train-00000-of-00001.arrow.tmp-123-abc"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"")
    (out / ".lock").unlink()  # the killed run's lock (its pid may be reused by now)
    assert run(bridge_root, out) == 0
    assert not stray.exists()
    assert shard_hashes(out) == shard_hashes(reference)


def test_a_full_disk_is_one_line(bridge_root, tmp_path, monkeypatch, capfd):
    import errno

    from storage import files

    real = files.open_file

    def full(path, mode="rb"):
        if "w" in mode and ".work/export" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, mode)

    monkeypatch.setattr(files, "open_file", full)
    assert run(bridge_root, tmp_path / "out") == 2
    assert "no space left on the device of" in one_error_line(capfd)


# ---------------------------------------------------------------- 7-9. names, other outputs, splits


@pytest.mark.parametrize("text, message", [
    ("name: ../../escape\ndatasets: {bridge_orig: 1}\n", "mixture name '../../escape' must be letters"),
    ("datasets: {'../x': 1}\ndataset_configs:\n  '../x': {}\n", "dataset name '../x' must be letters"),
])  # fmt: skip
def test_names_that_would_be_paths_are_refused(tmp_path, bridge_root, text, message, capfd):
    mix = tmp_path / "mix.yaml"
    mix.write_text(text)
    assert run(bridge_root, tmp_path / "out", mixture=("--mixture", str(mix))) == 2
    assert message in one_error_line(capfd)
    assert not (tmp_path / "out").exists()


def test_another_mixtures_output_is_refused_and_foreign_files_kept(bridge_root, tmp_path, capfd):
    out = tmp_path / "out"
    assert run(bridge_root, out) == 0
    before = shard_hashes(out)
    capfd.readouterr()
    assert run(bridge_root, out, mixture=("--datasets", "bridge_orig=1")) == 2
    assert "holds the export of mixture 'bridge', not 'custom'" in one_error_line(capfd)
    assert shard_hashes(out) == before
    (out / "shards" / "notes.txt").write_text("mine")
    foreign = out / "shards" / "other" / "x.arrow"
    foreign.parent.mkdir()
    foreign.write_bytes(b"not ours")
    assert run(bridge_root, out, "--image-size", "40") == 0
    assert (out / "shards" / "notes.txt").read_text() == "mine" and foreign.read_bytes() == b"not ours"


@pytest.mark.parametrize("split, message", [
    ("train+train", "episodes 0..24 of 'train' are named twice"),
    ("train[:10]+train[5:]", "episodes 5..9 of 'train' are named twice"),
    ("foo", "no split 'foo'"),
    ("train[:200%]", "bad split 'train[:200%]'"),
])  # fmt: skip
def test_bad_splits_are_one_line(bridge_root, tmp_path, capfd, split, message):
    assert run(bridge_root, tmp_path / "out", "--split", split) == 2
    assert message in one_error_line(capfd)


@pytest.mark.parametrize("edit, message", [
    (lambda d: (d / "features.json").unlink(), "no features.json in"),
    (lambda d: (d / "dataset_info.json").write_text('{"splits": {"train": 1}}'), "not a TFDS dataset_info"),
    (lambda d: (d / "dataset_info.json").write_text('{"splits": [{"name": "train", "shardLengths": ["x"]}]}'),
     "shard length 'x' is not a count of episodes"),
])  # fmt: skip
def test_broken_metadata_is_one_line(bridge_copy, tmp_path, capfd, edit, message):
    data, shard_dir = bridge_copy
    edit(shard_dir)
    assert run(data, tmp_path / "out") == 2
    assert message in one_error_line(capfd)


def test_extreme_weights_and_non_utf8_instructions(bridge_copy, tmp_path):
    data, shard_dir = bridge_copy

    def latin1(i, f):
        if i == 0:
            f["steps/language_instruction"].bytes_list.value[:] = [b"pick up the caf\xe9 cup"] * len(
                f["steps/language_instruction"].bytes_list.value
            )

    rewrite_records(shard_dir / NAME.format(0), latin1)
    out = tmp_path / "out"
    assert run(data, out, mixture=("--datasets", "bridge_orig=1e308")) == 0
    manifest = read_json(str(out / "manifest.json"))
    assert manifest["effective_weights"] == {"bridge_orig": 1.0}
    report = read_json(str(out / "report.json"))
    (p,) = [p for p in report["problems"] if "not valid UTF-8" in p["reason"]]
    assert p["episode_id"] == f"{NAME.format(0)}#0" and p["episodes_lost"] == 0
    assert table(out).column("language_instruction")[0].as_py() == "pick up the caf\ufffd cup"
    shutil.rmtree(out)
