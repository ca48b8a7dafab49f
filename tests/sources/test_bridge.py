"""The real BridgeData V2 slice read as `bridge_orig`, checked against numpy by hand."""

import json
import shutil

import numpy as np
import pytest

from sources.rlds import RLDSDataset, RLDSError, open_dataset
from transforms.standardize import required_keys, standardize


@pytest.fixture(scope="module")
def bridge(bridge_root, registry):
    cfg = registry.datasets["bridge_orig"]
    return cfg, open_dataset(str(bridge_root), cfg)


def binarize_by_hand(g):
    """>0.95 open, <0.05 closed, in between: the next decisive value (scan from the end)."""
    out, carry = np.empty(len(g)), float(g[-1] >= 0.5)
    for i in range(len(g) - 1, -1, -1):
        if g[i] > 0.95:
            carry = 1.0
        elif g[i] < 0.05:
            carry = 0.0
        out[i] = carry
    return out


def test_standardized_actions_match_hand_computation(bridge):
    cfg, ds = bridge
    episodes = list(ds.episodes("train", keys=required_keys(cfg, proprio=True)))
    assert len(episodes) == 25
    for raw in episodes:
        action, state = raw.steps["action"].astype(np.float64), raw.steps["observation/state"].astype(np.float64)
        assert action.shape == (10, 7) and state.shape == (10, 7)
        a, s = action[1:], state[1:]  # the first step's action is all zeros: dropped
        expected = np.concatenate([s[1:, :6] - s[:-1, :6], binarize_by_hand(a[:, 6])[:-1, None]], axis=1)
        out = standardize(raw, cfg)
        assert out.action.dtype == np.float32 and out.action.shape == (8, 7)
        np.testing.assert_allclose(out.action, expected, atol=1e-6)
        np.testing.assert_allclose(out.proprio, s[:-1], atol=1e-6)
        assert out.instruction == raw.steps["language_instruction"][0].decode()
        assert set(np.unique(out.action[:, 6])) <= {0.0, 1.0}


def test_relabeled_movement_differs_from_commanded_action(bridge):
    """Guards against a transform that passes the commanded action through."""
    cfg, ds = bridge
    raw = next(ds.episodes("train[:1]", keys=required_keys(cfg)))
    out = standardize(raw, cfg)
    assert not np.allclose(out.action[:, :6], raw.steps["action"][1:-1, :6], atol=1e-4)


def test_reading_action_fields_decodes_and_parses_no_image(bridge, monkeypatch):
    import PIL.Image
    import tensorflow as tf

    cfg, ds = bridge
    decodes, parsed = [], []
    for mod, name in [
        (tf.io, "decode_jpeg"),
        (tf.io, "decode_image"),
        (tf.image, "decode_jpeg"),
        (tf.io, "decode_png"),
        (PIL.Image, "open"),
    ]:
        real = getattr(mod, name)
        monkeypatch.setattr(mod, name, lambda *a, _r=real, **k: (decodes.append(1), _r(*a, **k))[1])
    import sources.rlds as rlds

    real_convert = rlds._to_numpy
    monkeypatch.setattr(rlds, "_to_numpy", lambda flat, f: (parsed.append(f.key), real_convert(flat, f))[1])

    episodes = list(ds.episodes("train", keys=required_keys(cfg)))
    assert len(episodes) == 25 and decodes == []
    assert set(parsed) == {"action", "observation/state", "language_instruction"}  # no image field converted
    assert all("observation/image_0" not in e.steps for e in episodes)

    # Asked for, images arrive as the stored JPEG bytes, still undecoded.
    with_images = next(ds.episodes("train[:1]", keys=required_keys(cfg, images=True)))
    assert decodes == []
    jpeg = with_images.steps["observation/image_0"]
    assert len(jpeg) == 10 and all(b[:2] == b"\xff\xd8" for b in jpeg)


def test_split_slices(bridge):
    _, ds = bridge
    ids = [e.episode_id for e in ds.episodes("train[:20%]", keys=["action"])]
    assert ids == [f"bridge_dataset-train.tfrecord-00000-of-00001#{i}" for i in range(5)]
    assert len(list(ds.episodes("train[-3:]", keys=["action"]))) == 3
    assert len(list(ds.episodes("train+val", keys=["action"]))) == 50
    first_val = next(ds.episodes("val[2:3]", keys=["action"])).episode_id
    assert first_val == "bridge_dataset-val.tfrecord-00000-of-00001#2"


def test_missing_data_errors(bridge, tmp_path, registry):
    cfg, ds = bridge
    with pytest.raises(RLDSError, match=r"data dir '.*nowhere' does not exist"):
        open_dataset(str(tmp_path / "nowhere"), cfg)
    with pytest.raises(
        RLDSError, match=r"dataset 'kuka' 0.1.0: not found \(looked for dataset_info.json in .*kuka/0.1.0\)"
    ):
        open_dataset(str(tmp_path), registry.datasets["kuka"])
    with pytest.raises(RLDSError, match=r"dataset 'bridge_orig': no split 'test' \(has: train, val\)"):
        ds.plan("test")
    with pytest.raises(RLDSError, match=r"no feature 'observation/depth'"):
        next(ds.episodes("train", keys=["observation/depth"]))


def test_missing_shard_names_the_file(bridge, tmp_path):
    _, ds = bridge
    copy = tmp_path / "bridge_dataset" / "1.0.0"
    copy.mkdir(parents=True)
    for f in ("dataset_info.json", "features.json"):
        shutil.copy(f"{ds.directory}/{f}", copy / f)
    broken = RLDSDataset(str(copy), "bridge_orig")
    with pytest.raises(
        RLDSError, match=r"shard .*bridge_dataset-train.tfrecord-00000-of-00001 listed in dataset_info.json is missing"
    ):
        next(broken.episodes("train"))
    (copy / "dataset_info.json").write_text("{not json")
    with pytest.raises(RLDSError, match=r"dataset_info.json: not valid JSON"):
        RLDSDataset(str(copy), "bridge_orig")


def test_shards_found_from_dataset_info(bridge):
    _, ds = bridge
    info = json.loads(open(f"{ds.directory}/dataset_info.json").read())
    assert info["name"] == "bridge_dataset" and ds.tfds_name == "bridge_dataset"
    ((path, n),) = ds.shard_files("train")
    assert path.endswith("bridge_dataset-train.tfrecord-00000-of-00001") and n == 25
