"""The shards' `proprio` column: the registry's proprio keys, standardized, checked by hand on the raw state."""

import json

import numpy as np
import pyarrow as pa

from manifests.registry import load_registry
from shards.reader import MixtureDataset
from sources.rlds import open_dataset
from tests.pipeline.test_end_to_end import read_rows


def raw_steps(root, name, keys):
    cfg = load_registry().datasets[name]
    return [e.steps for e in open_dataset(str(root), cfg).episodes("train", keys=keys)]


def column(table, name):
    return np.stack(table.column(name).to_numpy(zero_copy_only=False))


def test_bridge_proprio_is_the_raw_state_standardized_by_hand(bridge_export, bridge_root):
    table = read_rows(bridge_export, None, "bridge_orig")
    assert table.schema.field("proprio").type == pa.list_(pa.float32(), 7)
    # Bridge: the first step is dropped (its action is zeros) and movement is relabeled from the next
    # state, which drops the last step: the proprio of the kept steps is state[1:-1]
    episodes = raw_steps(bridge_root, "bridge_orig", ["observation/state"])
    expected = np.concatenate([np.asarray(s["observation/state"], np.float32)[1:-1] for s in episodes])
    np.testing.assert_array_equal(column(table, "proprio"), expected)
    manifest = json.loads((bridge_export / "manifest.json").read_text())
    assert "proprio" in manifest["columns"]
    stats = json.loads((bridge_export / "dataset_statistics.json").read_text())["bridge_orig"]["proprio"]
    x = expected.astype(np.float64)
    np.testing.assert_allclose(stats["mean"], x.mean(0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(stats["std"], x.std(0), rtol=1e-5, atol=1e-9)
    np.testing.assert_array_equal(stats["min"], x.min(0))
    np.testing.assert_array_equal(stats["max"], x.max(0))
    for key, q in (("q01", 0.01), ("q99", 0.99)):
        assert np.all(np.abs(np.array(stats[key]) - np.quantile(x, q, axis=0)) <= 1e-3 * np.ptp(x, axis=0) + 1e-9)


def test_sample_proprio_by_hand_and_no_column_without_proprio_keys(sample_export, sample_corpus):
    taco = raw_steps(sample_corpus, "taco_play", ["observation/robot_obs"])
    expected = np.concatenate(
        [np.asarray(s["observation/robot_obs"], np.float32)[:, [0, 1, 2, 3, 4, 5, 7]] for s in taco]
    )
    np.testing.assert_array_equal(column(read_rows(sample_export, None, "taco_play"), "proprio"), expected)
    keys = ["observation/base_pose_tool_reached", "observation/gripper_closed"]
    fractal = raw_steps(sample_corpus, "fractal20220817_data", keys)
    expected = np.concatenate([np.concatenate([np.asarray(s[k], np.float32) for k in keys], axis=1) for s in fractal])
    table = read_rows(sample_export, None, "fractal20220817_data")
    assert table.schema.field("proprio").type == pa.list_(pa.float32(), 8)
    np.testing.assert_array_equal(column(table, "proprio"), expected)
    # roboturk names no proprio keys: no column, no statistics
    assert "proprio" not in read_rows(sample_export, None, "roboturk").column_names
    assert "proprio" not in json.loads((sample_export / "dataset_statistics.json").read_text())["roboturk"]


def test_the_reader_passes_proprio_through(bridge_export):
    table = read_rows(bridge_export, None, "bridge_orig")
    by_step = {
        (e, s): p
        for e, s, p in zip(
            table.column("episode_id").to_pylist(), table.column("step").to_pylist(), column(table, "proprio")
        )
    }
    items = list(MixtureDataset(str(bridge_export), mode="epoch", seed=0, verify=False))
    assert len(items) == len(by_step)
    for item in items:
        np.testing.assert_array_equal(np.asarray(item["proprio"]), by_step[(item["episode_id"], int(item["step"]))])
