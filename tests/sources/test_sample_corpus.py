"""The built-in sample corpus: real TFDS datasets in each registry dataset's schema, deterministic."""

import hashlib

import numpy as np

from sources.rlds import open_dataset
from sources.sample import SCHEMAS_FILE, generate, load_yaml, parse_spec
from transforms.standardize import required_keys, standardize


def tree_hashes(root):
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_every_dataset_opens_with_tfds_and_standardizes(sample_corpus, registry):
    import tensorflow_datasets as tfds

    schemas = load_yaml(SCHEMAS_FILE)["datasets"]
    assert set(schemas) == set(registry.datasets)
    for name, cfg in registry.datasets.items():
        ds = open_dataset(str(sample_corpus), cfg)
        builder = tfds.builder_from_directory(ds.directory)
        first = next(iter(builder.as_dataset(split="train").take(1)))
        assert int(first["steps"].cardinality()) >= 12  # a nested dataset of steps, as RLDS has
        episodes = [
            standardize(e, cfg) for e in ds.episodes("train", keys=required_keys(cfg, images=True, proprio=True))
        ]
        assert len(episodes) == builder.info.splits["train"].num_examples == 2
        actions = np.concatenate([e.action for e in episodes])
        assert actions.dtype == np.float32 and actions.shape[1] == 7 and np.isfinite(actions).all(), name
        grip = set(np.unique(actions[:, 6]).tolist())
        assert grip <= {0.0, 1.0}, name
        if not cfg.gripper_convention.startswith("always_"):
            assert grip == {0.0, 1.0}, name  # the sample opens and closes its gripper
        h, w = parse_spec(schemas[name]["steps"][cfg.primary_image])[1]
        jpeg = episodes[0].image[0]
        assert jpeg[:2] == b"\xff\xd8"
        from transforms.frames import decode

        assert decode(jpeg).shape == (h, w, 3), name
        assert (episodes[0].wrist_image is not None) == (cfg.wrist_image is not None)
        assert episodes[0].proprio is not None or not cfg.proprio


def test_scales_differ_between_datasets(sample_corpus, registry):
    means = {}
    for name in ("fractal20220817_data", "bridge_orig", "language_table"):
        cfg = registry.datasets[name]
        eps = [
            standardize(e, cfg)
            for e in open_dataset(str(sample_corpus), cfg).episodes("train", keys=required_keys(cfg))
        ]
        means[name] = np.abs(np.concatenate([e.action[:, :3] for e in eps])).mean()
    assert means["fractal20220817_data"] > 5 * means["bridge_orig"]


def test_generation_is_byte_identical(tmp_path):
    names = ["kuka", "bridge_orig", "language_table"]
    a = tree_hashes(generate(tmp_path / "a", episodes=1, names=names, verbose=False))
    b = tree_hashes(generate(tmp_path / "b", episodes=1, names=names, verbose=False))
    assert a == b and len(a) == 3 * 4
