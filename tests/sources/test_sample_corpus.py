"""The built-in sample corpus: real TFDS datasets in each registry dataset's real schema, deterministic;
and the standardized gripper of every dataset equal to the public OXE formula applied by hand."""

import hashlib

import numpy as np
import pytest

from sources.rlds import open_dataset
from sources.sample import generate, load_schemas
from transforms.frames import decode
from transforms.standardize import required_keys, standardize


def tree_hashes(root):
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def builder(corpus, cfg):
    import tensorflow_datasets as tfds

    return tfds.builder_from_directory(open_dataset(str(corpus), cfg).directory)


def lookup(tree, key: str):
    """A step key ("observation/clip_function_input/base_pose_tool_reached") in a nested mapping whose
    own keys may contain "/": the longest matching key at each level, as the release names them."""
    parts = key.split("/")
    while parts:
        for n in range(len(parts), 0, -1):
            name = "/".join(parts[:n])
            if name in tree:
                tree, parts = tree[name], parts[n:]
                break
        else:
            raise KeyError(key)
    return tree


def step_features(b):
    return b.info.features["steps"].feature


def test_real_key_names_dtypes_and_encodings(sample_corpus, registry):
    """What the public releases' features.json say, checked on what TFDS itself reads back."""
    ds = registry.datasets
    kuka = step_features(builder(sample_corpus, ds["kuka"]))["observation"]
    assert "clip_function_input/base_pose_tool_reached" in kuka.keys() and "clip_function_input" not in kuka.keys()
    assert kuka["clip_function_input/base_pose_tool_reached"].shape == (7,)
    bc_z = step_features(builder(sample_corpus, ds["bc_z"]))
    assert {"future/xyz_residual", "future/axis_angle_residual", "future/target_close"} <= set(bc_z["action"].keys())
    assert bc_z["action"]["future/target_close"].dtype.name == "int64"
    assert {"present/xyz", "present/axis_angle", "present/sensed_close"} <= set(bc_z["observation"].keys())
    ur5 = step_features(builder(sample_corpus, ds["berkeley_autolab_ur5"]))["observation"]["image_with_depth"]
    assert type(ur5).__name__ == "Image" and ur5.shape == (480, 640, 1) and ur5.dtype.name == "float32"
    nyu = step_features(builder(sample_corpus, ds["nyu_franka_play_dataset_converted_externally_to_rlds"]))
    for key in ("depth", "depth_additional_view"):
        f = nyu["observation"][key]
        assert type(f).__name__ == "Tensor" and f.shape == (128, 128, 1) and f.dtype.name == "int32"
    droid = step_features(builder(sample_corpus, ds["droid"]))
    assert {f.dtype.name for f in droid["action_dict"].values()} == {"float64"}
    assert droid["observation"]["cartesian_position"].dtype.name == "float64"
    assert droid["action"].dtype.name == "float64"
    fmb = step_features(builder(sample_corpus, ds["fmb_dataset"]))["observation"]
    assert {"image_side_1", "image_side_2", "image_wrist_1"} <= set(fmb.keys())


def test_every_dataset_opens_with_tfds_and_standardizes(sample_corpus, registry):
    schemas = load_schemas()
    assert set(schemas) == set(registry.datasets)
    for name, cfg in registry.datasets.items():
        b = builder(sample_corpus, cfg)
        features = step_features(b)
        for key in required_keys(cfg, images=True, proprio=True):  # every key the registry reads is a real one
            lookup(features, key)
        first = next(iter(b.as_dataset(split="train").take(1)))
        assert int(first["steps"].cardinality()) >= 12  # a nested dataset of steps, as RLDS has
        keys = required_keys(cfg, images=True, proprio=True)
        episodes = [standardize(e, cfg) for e in open_dataset(str(sample_corpus), cfg).episodes("train", keys=keys)]
        assert len(episodes) == b.info.splits["train"].num_examples == 2
        actions = np.concatenate([e.action for e in episodes])
        assert actions.dtype == np.float32 and actions.shape[1] == 7 and np.isfinite(actions).all(), name
        h, w = schemas[name]["steps"][cfg.primary_image].shape
        assert decode(episodes[0].image[0]).shape == (h, w, 3), name
        assert (episodes[0].wrist_image is not None) == (cfg.wrist_image is not None)
        assert episodes[0].proprio is not None or not cfg.proprio


# The public OXE gripper formulas (OpenVLA = SpatialVLA `oxe/transforms.py`, `data_utils.py`), written
# out step by step as they are defined, independently of transforms/gripper.py.
def public_binarize(a):
    out, carry = np.empty(len(a)), a[-1]
    for i in range(len(a) - 1, -1, -1):
        carry = 1.0 if a[i] > 0.95 else 0.0 if a[i] < 0.05 else carry
        out[i] = carry
    return out


def public_rel2abs(a):
    thr = np.where(a < -0.1, 1.0, np.where(a > 0.1, -1.0, 0.0))
    start = -thr[np.argmax(thr != 0)] or 1.0
    out, carry = np.empty(len(a)), start
    for i, v in enumerate(thr):
        carry = v if v != 0 else carry
        out[i] = carry
    return out / 2 + 0.5


PUBLIC = {
    "continuous_open": public_binarize,
    "relative": public_rel2abs,
    "absolute_open": lambda x: x,
    "absolute_closed": lambda x: 1 - x,
    "signed_open": lambda x: np.clip(x, 0, 1),
    "signed_closed": lambda x: 1 - np.clip(x, 0, 1),
    "always_open": lambda x: np.ones(len(x)),
    "always_closed": lambda x: np.zeros(len(x)),
}
CONTINUOUS = {  # where the real releases store an in-between gripper: it must survive standardization
    "stanford_hydra_dataset_converted_externally_to_rlds",
    "nyu_franka_play_dataset_converted_externally_to_rlds",
    "furniture_bench_dataset_converted_externally_to_rlds",
    "dlr_edan_shared_control_converted_externally_to_rlds",
    "dobbe",
    "droid",
}


def raw_gripper(b, key: str | None, part_slice) -> list[np.ndarray]:
    """The raw gripper column of each train episode, read by TFDS itself (not by sources/)."""
    import tensorflow_datasets as tfds

    out = []
    for ep in b.as_dataset(split="train", decoders={"steps": tfds.decode.SkipDecoding()}):
        steps = ep["steps"]  # undecoded: every step feature as one [T, ...] tensor
        t = int(steps["is_first"].shape[0])
        if key is None:
            out.append(np.zeros(t))
            continue
        col = np.asarray(lookup(steps, key), np.float64).reshape(t, -1)
        out.append(col[:, part_slice[0]] if part_slice else col[:, 0])
    return out


@pytest.mark.parametrize("name", sorted(load_schemas()))
def test_gripper_is_the_public_formula_and_continuous_stays_continuous(sample_corpus, registry, name):
    cfg = registry.datasets[name]
    part = cfg.action.gripper
    raws = raw_gripper(builder(sample_corpus, cfg), part.key, part.slice)
    keys = required_keys(cfg)
    ours = [
        standardize(e, cfg).action[:, 6] for e in open_dataset(str(sample_corpus), cfg).episodes("train", keys=keys)
    ]
    drop = cfg.action.drop_first_steps
    for raw, got in zip(raws, ours, strict=True):
        public = PUBLIC[part.convention](raw[drop:])[: len(got)]  # Bridge: relabeling then drops the last step
        np.testing.assert_allclose(got, public.astype(np.float32), rtol=0, atol=1e-6, err_msg=name)
    values = np.concatenate(ours)
    in_between = (values > 0.01) & (values < 0.99)
    assert in_between.any() == (name in CONTINUOUS), (name, np.unique(values)[:8])


def test_scales_differ_between_datasets(sample_corpus, registry):
    means = {}
    for name in ("fractal20220817_data", "bridge_orig", "language_table"):
        cfg = registry.datasets[name]
        eps = open_dataset(str(sample_corpus), cfg).episodes("train", keys=required_keys(cfg))
        means[name] = np.abs(np.concatenate([standardize(e, cfg).action[:, :3] for e in eps])).mean()
    assert means["fractal20220817_data"] > 5 * means["bridge_orig"]


def test_generation_is_byte_identical(tmp_path):
    names = ["kuka", "bridge_orig", "language_table"]
    a = tree_hashes(generate(tmp_path / "a", episodes=1, names=names, verbose=False))
    b = tree_hashes(generate(tmp_path / "b", episodes=1, names=names, verbose=False))
    assert a == b and len(a) == 3 * 4
