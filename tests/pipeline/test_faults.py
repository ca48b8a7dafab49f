"""Faults injected into a copy of the real Bridge slice: the run survives, counts and reports each."""

import json
import shutil

import pytest
import tensorflow as tf

from pipeline.run import main

pytestmark = pytest.mark.slow  # end-to-end runs of the job

NAME = "bridge_dataset-train.tfrecord-0000{}-of-00002"


def two_shard_copy(bridge_root, dst):
    """The 25 train episodes twice, as a 2-shard split (50 episodes)."""
    src = bridge_root / "bridge_dataset" / "1.0.0"
    out = dst / "bridge_dataset" / "1.0.0"
    out.mkdir(parents=True)
    shutil.copy(src / "features.json", out)
    info = json.loads((src / "dataset_info.json").read_text())
    info["splits"] = [{**info["splits"][0], "shardLengths": ["25", "25"]}]
    (out / "dataset_info.json").write_text(json.dumps(info))
    for i in range(2):
        shutil.copy(src / "bridge_dataset-train.tfrecord-00000-of-00001", out / NAME.format(i))
    return out


def rewrite_records(path, edit):
    records = [tf.train.Example.FromString(r) for r in tf.data.TFRecordDataset(str(path)).as_numpy_iterator()]
    with tf.io.TFRecordWriter(str(path)) as w:
        for i, ex in enumerate(records):
            edit(i, ex.features.feature)
            w.write(ex.SerializeToString())


def break_records(i, f):
    if i == 3:  # 69 floats: not 10 steps of 7
        del f["steps/action"].float_list.value[-1]
    if i == 4:  # NaN in a reached state: the relabeled movement is not finite
        f["steps/observation/state"].float_list.value[5 * 7] = float("nan")
    if i == 6:  # no steps at all
        for k in list(f):
            if k.startswith("steps/"):
                f[k].Clear()
                kind = {"steps/language_instruction": "bytes_list"}.get(k)
                getattr(f[k], kind or ("int64_list" if k.startswith("steps/is_") else "float_list"))  # keep the type
    if i == 7:  # no instruction
        n = len(f["steps/language_instruction"].bytes_list.value)
        del f["steps/language_instruction"].bytes_list.value[:]
        f["steps/language_instruction"].bytes_list.value.extend([b""] * n)


def run(data_dir, out, *extra):
    return main(
        [
            "--mixture",
            "bridge",
            "--data-dir",
            str(data_dir),
            "--out",
            str(out),
            "--no-depth",
            "--image-size",
            "32",
            *extra,
        ]
    )


def report_of(out):
    return json.loads((out / "report.json").read_text())


@pytest.fixture()
def broken(bridge_root, tmp_path):
    data = tmp_path / "data"
    shard_dir = two_shard_copy(bridge_root, data)
    rewrite_records(shard_dir / NAME.format(0), break_records)
    return data, shard_dir


def test_bad_records_are_counted_and_the_run_completes(broken, tmp_path, capfd):
    data, shard_dir = broken
    out = tmp_path / "out"
    assert run(data, out) == 0
    report = report_of(out)
    reasons = {p["episode_id"]: p for p in report["problems"]}
    f0 = str(shard_dir / NAME.format(0))
    assert reasons[f"{NAME.format(0)}#3"]["reason"].startswith("does not match features.json")
    assert "non-finite action at step(s) [3, 4]" in reasons[f"{NAME.format(0)}#4"]["reason"]
    assert reasons[f"{NAME.format(0)}#6"]["reason"] == "empty episode (0 steps)"
    assert reasons[f"{NAME.format(0)}#7"]["reason"] == "missing instruction (kept)"
    assert reasons[f"{NAME.format(0)}#7"]["episodes_lost"] == 0
    assert all(p["file"] == f0 and p["dataset"] == "bridge_orig" for p in report["problems"])
    assert report["episodes_lost"] == 3
    assert report["datasets"]["bridge_orig"]["episodes_read"] == 47
    manifest = json.loads((out / "manifest.json").read_text())
    assert sum(s["num_episodes"] for s in manifest["datasets"]["bridge_orig"]["shards"]) == 47
    assert "dropped: 3 episodes" in capfd.readouterr().out


def test_strict_fails_with_the_same_message(broken, tmp_path, capfd):
    data, _ = broken
    out = tmp_path / "strict"
    assert run(data, out, "--strict") == 1
    err = capfd.readouterr().err
    line = [x for x in err.splitlines() if x.startswith("error:")]
    assert len(line) == 1 and "--strict: 4 problem(s) in the input, first: dataset 'bridge_orig' file" in line[0]
    assert "does not match features.json" in line[0]
    assert not (out / "manifest.json").exists() and report_of(out)["episodes_lost"] == 3


@pytest.mark.parametrize(
    "damage, reason, lost",
    [
        ("crc", "(data checksum)", 1),  # the framing holds: only the damaged record is lost
        ("truncate", "corrupt TFRecord, episodes from", None),  # everything from the cut on
        ("missing", "listed in dataset_info.json is missing", 25),
    ],
)
def test_damaged_shards_lose_only_what_they_hold(bridge_root, tmp_path, damage, reason, lost):
    data = tmp_path / "data"
    shard = two_shard_copy(bridge_root, data) / NAME.format(1)
    raw = bytearray(shard.read_bytes())
    if damage == "crc":
        offsets, pos = [], 0
        while pos < len(raw):  # walk the TFRecord framing: length (8) + crc (4) + data + crc (4)
            offsets.append(pos)
            pos += 16 + int.from_bytes(raw[pos : pos + 8], "little")
        raw[offsets[12] + 12 + 100] ^= 0xFF  # a byte inside episode 12's data
        shard.write_bytes(bytes(raw))
    elif damage == "truncate":
        shard.write_bytes(bytes(raw[: len(raw) * 3 // 5]))
    else:
        shard.unlink()
    out = tmp_path / "out"
    assert run(data, out) == 0
    report = report_of(out)
    (p,) = report["problems"]
    assert reason in p["reason"] and p["file"] == str(shard) and p["dataset"] == "bridge_orig"
    if lost is not None:
        assert p["episodes_lost"] == lost
    if damage == "crc":
        assert p["episode_id"] == f"{NAME.format(1)}#12"
    assert report["datasets"]["bridge_orig"]["episodes_read"] == 50 - p["episodes_lost"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert sum(s["num_episodes"] for s in manifest["datasets"]["bridge_orig"]["shards"]) == 50 - p["episodes_lost"]


def test_a_grid_file_that_is_not_a_grid(bridge_root, tmp_path, capfd):
    out = tmp_path / "out"
    assert run(bridge_root, out, "--stages", "stats") == 0
    (out / "grids").mkdir()
    (out / "grids" / "bridge.json").write_text('{"num_bins": 3}')
    assert run(bridge_root, out, "--stages", "export") == 2
    line = [x for x in capfd.readouterr().err.splitlines() if x.startswith("error:")]
    assert len(line) == 1 and "bridge.json: not a grid file" in line[0]
    assert not (out / "manifest.json").exists() and not (out / "shards").exists()
