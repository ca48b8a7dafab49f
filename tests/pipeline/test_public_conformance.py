"""Where the published pipelines (OpenVLA, SpatialVLA) do something dataset-specific, the export does
the same: DROID's camera per episode and zero-movement filter, fmb's primary camera."""

import json
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

from manifests.registry import load_registry
from pipeline.run import main
from shards.manifest import verify_manifest
from sources.rlds import open_dataset
from sources.sample import generate
from tests.pipeline.test_end_to_end import read_rows
from transforms.frames import prepare_frames
from transforms.normalize import normalize
from transforms.sampling import sampled
from transforms.standardize import primary_camera

pytestmark = pytest.mark.slow

SIZE = 32
EXTERIOR = ["observation/exterior_image_1_left", "observation/exterior_image_2_left"]


def test_droid_camera_is_drawn_per_episode_from_the_seed():
    cfg = load_registry().datasets["droid"]
    assert list(cfg.primary_choices) == EXTERIOR
    ids = [f"droid-train.tfrecord-00000-of-00001#{i}" for i in range(400)]
    draws = [primary_camera(cfg, i, seed=0) for i in ids]
    assert draws == [primary_camera(cfg, i, seed=0) for i in ids]  # a rerun draws the same
    assert 160 <= Counter(draws)[EXTERIOR[0]] <= 240  # 50/50 as the public configs (binomial, 4 sigma)
    other = [primary_camera(cfg, i, seed=1) for i in ids]
    assert 120 <= sum(a != b for a, b in zip(draws, other)) <= 280  # another seed: an independent draw
    fmb = load_registry().datasets["fmb_dataset"]
    assert primary_camera(fmb, ids[0], seed=3) == "observation/image_side_1"


def test_zero_movement_filter_by_hand():
    stats = {"q01": [-1.0] * 6 + [0.0], "q99": [1.0] * 6 + [1.0], "mask": [True] * 6 + [False]}
    action = np.zeros((5, 7))
    action[:, 6] = [1, 0, 1, 0, 1]  # the gripper never counts as movement
    action[1, 2] = 0.3
    action[3, 5] = -1e-3
    action[4, 0] = 1e-7  # within 1e-5 of the normalized zero: does not move
    normalized = normalize(action, stats, "bounds_q99")
    np.testing.assert_array_equal(sampled(normalized, stats, "bounds_q99", "zero_movement"), [0, 1, 0, 1, 0])
    np.testing.assert_array_equal(sampled(normalized, stats, "bounds_q99", None), [1] * 5)


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    root = tmp_path_factory.mktemp("conformance")
    data = generate(root / "data", episodes=6, names=["droid", "fmb_dataset"], verbose=False)
    out = root / "out"
    args = ["--datasets", "droid=1,fmb_dataset=1", "--data-dir", str(data), "--out", str(out), "--no-depth"]
    assert main([*args, "--image-size", str(SIZE), "--seed", "5"]) == 0
    return data, out


def raw_episodes(data, name, keys):
    cfg = load_registry().datasets[name]
    return {e.episode_id: e.steps for e in open_dataset(str(data), cfg).episodes("train", keys=keys)}


def by_episode(table: pa.Table, column: str) -> dict:
    out: dict = {}
    for eid, value in zip(table.column("episode_id").to_pylist(), table.column(column).to_pylist()):
        out.setdefault(eid, []).append(value)
    return out


def test_droid_image_is_the_recorded_camera_and_both_occur(export):
    data, out = export
    manifest = verify_manifest(str(out))
    assert manifest["datasets"]["droid"]["cameras"] == EXTERIOR
    table = read_rows(out, manifest, "droid")
    cameras, images = by_episode(table, "camera"), by_episode(table, "image")
    raw = raw_episodes(data, "droid", EXTERIOR)
    chosen = {}
    for eid, cams in cameras.items():
        assert len(set(cams)) == 1, eid  # one camera for the whole episode
        chosen[eid] = cams[0]
        expected, _ = prepare_frames(raw[eid][cams[0]], SIZE)
        unchosen, _ = prepare_frames(raw[eid][(set(EXTERIOR) - {cams[0]}).pop()], SIZE)
        assert images[eid] == expected and images[eid] != unchosen, eid
    assert set(chosen.values()) == set(EXTERIOR)  # with --seed 5 both cameras occur in 6 episodes


def test_droid_steps_that_do_not_move_are_marked_and_counted(export):
    data, out = export
    manifest = verify_manifest(str(out))
    table = read_rows(out, manifest, "droid")
    marked = by_episode(table, "sampled")
    raw = raw_episodes(data, "droid", ["action_dict/cartesian_velocity"])
    still = 0
    for eid, flags in marked.items():
        velocity = np.asarray(raw[eid]["action_dict/cartesian_velocity"], np.float64)
        moves = (velocity[:, :6] != 0).any(axis=1)  # the corpus writes exact zeros for a still step
        assert flags == moves.tolist(), eid
        still += int((~moves).sum())
    assert still > 0
    report = json.loads((out / "report.json").read_text())
    assert report["datasets"]["droid"]["steps_not_sampled"] == still
    assert manifest["datasets"]["droid"]["steps_not_sampled"] == still
    assert manifest["datasets"]["droid"]["sample_filter"] == "zero_movement"
    # the statistics include the still steps, as the public pipeline computes them
    stats = json.loads((out / "dataset_statistics.json").read_text())["droid"]
    assert stats["num_transitions"] == table.num_rows
    assert "sampled" not in read_rows(out, manifest, "fmb_dataset").column_names


def test_fmb_primary_image_is_image_side_1(export):
    data, out = export
    manifest = verify_manifest(str(out))
    table = read_rows(out, manifest, "fmb_dataset")
    images = by_episode(table, "image")
    raw = raw_episodes(data, "fmb_dataset", ["observation/image_side_1", "observation/image_side_2"])
    assert manifest["datasets"]["fmb_dataset"]["cameras"] == ["observation/image_side_1"]
    for eid, frames in images.items():
        assert frames == prepare_frames(raw[eid]["observation/image_side_1"], SIZE)[0], eid
        assert frames != prepare_frames(raw[eid]["observation/image_side_2"], SIZE)[0], eid


@pytest.mark.parametrize("chunk", [1, 2, 4, 9])
def test_a_step_is_sampled_when_its_chunk_moves(chunk):
    from transforms.sampling import chunk_sampled

    moves = np.array([0, 0, 1, 0, 0, 0, 1, 0, 0], bool)
    expected = [bool(moves[t : t + chunk].any()) for t in range(len(moves))]  # slices stop at the end
    np.testing.assert_array_equal(chunk_sampled(moves, chunk), expected)
    assert chunk_sampled(np.zeros(0, bool), chunk).shape == (0,)
