"""features.json and split specs read without TFDS (sources/features.py, sources/splits.py), against
TFDS's own classes: every sample-corpus dataset and the real Bridge slice, a table of split specs on
several split sizes and shard layouts, and the specs both refuse."""

import json
import types

import numpy as np
import pytest
import tensorflow_datasets as tfds

from sources.features import FeatureSpecError, FieldInfo, parse_features
from sources.rlds import RLDSDataset, RLDSError
from sources.splits import SplitSpecError, resolve, split_names

# ---------------------------------------------------------------- features.json


def tfds_fields(spec: dict) -> dict[str, FieldInfo]:
    """The leaves as TFDS's FeatureConnector.from_json gives them (the reader's former TFDS path)."""
    out = {}

    def walk(feature, prefix, per_step):
        if isinstance(feature, tfds.features.Dataset):
            return walk(feature.feature, prefix, True)
        if isinstance(feature, tfds.features.FeaturesDict):
            for name, sub in feature.items():
                walk(sub, f"{prefix}/{name}" if prefix else name, per_step)
            return
        kind = {"Image": "image", "Text": "text"}.get(type(feature).__name__, "tensor")
        dtype = np.dtype(feature.np_dtype) if kind == "tensor" else np.dtype(object)
        encoded = str(getattr(getattr(feature, "_encoding", None), "value", "none")) != "none"
        if kind == "tensor" and (dtype.kind in "SUO" or encoded):
            dtype = np.dtype(object)
        shape = () if kind == "image" or encoded else tuple(-1 if d is None else int(d) for d in feature.shape)
        key = prefix[len("steps/") :] if per_step and prefix.startswith("steps/") else prefix
        pixels = ()
        if kind == "image":  # TFDS's declared pixels: dtype and (H, W, C), None where free
            pixels = (np.dtype(feature.np_dtype).name, tuple(-1 if d is None else int(d) for d in feature.shape))
        out[key] = FieldInfo(key, prefix, dtype.name, shape, per_step, kind, *pixels)

    walk(tfds.features.FeatureConnector.from_json(spec), "", False)
    return out


def feature_specs(sample_corpus, bridge_root):
    specs = {
        f"sample/{p.parent.parent.name}": json.loads(p.read_text()) for p in sample_corpus.glob("*/*/features.json")
    }
    specs["real bridge"] = json.loads((bridge_root / "bridge_dataset/1.0.0/features.json").read_text())
    return specs


def test_every_dataset_s_features_equal_tfds_s(sample_corpus, bridge_root):
    specs = feature_specs(sample_corpus, bridge_root)
    assert len(specs) == 29  # the 28 registry datasets and the real Bridge slice
    kinds = set()
    for name, spec in specs.items():
        ours, theirs = parse_features(spec), tfds_fields(spec)
        assert ours == theirs, name  # the same leaves, each the same (TFDS's order is its proto map's)
        kinds |= {(f.kind, f.dtype, f.per_step) for f in ours.values()}
    # the corpus covers what RLDS datasets hold: images, text, encoded (zlib) state, metadata, several dtypes
    assert {("image", "object", True), ("text", "object", True), ("tensor", "float32", True)} <= kinds
    assert {f.pixel_dtype for spec in specs.values() for f in parse_features(spec).values()} >= {"uint8", "float32"}
    assert {("tensor", "bool", True), ("tensor", "object", True)} <= kinds
    assert any(not per_step for _, _, per_step in kinds)


def test_snake_case_field_names_read_like_camel_case(bridge_root):
    spec = json.loads((bridge_root / "bridge_dataset/1.0.0/features.json").read_text())
    renamed = json.loads(
        json.dumps(spec)
        .replace('"pythonClassName"', '"python_class_name"')
        .replace('"featuresDict"', '"features_dict"')
    )
    assert parse_features(renamed) == parse_features(spec) == tfds_fields(renamed)


def tensor(dtype="float32", dims=("7",), encoding="none", cls="tensor_feature.Tensor"):
    return {
        "pythonClassName": f"tensorflow_datasets.core.features.{cls}",
        "tensor": {"shape": {"dimensions": list(dims)}, "dtype": dtype, "encoding": encoding},
    }


def rlds(**step_features):
    return {
        "pythonClassName": "tensorflow_datasets.core.features.features_dict.FeaturesDict",
        "featuresDict": {
            "features": {
                "steps": {
                    "pythonClassName": "tensorflow_datasets.core.features.dataset_feature.Dataset",
                    "sequence": {
                        "feature": {
                            "pythonClassName": "tensorflow_datasets.core.features.features_dict.FeaturesDict",
                            "featuresDict": {"features": step_features},
                        },
                        "length": "-1",
                    },
                }
            }
        },
    }


def test_dtypes_shapes_and_encodings_equal_tfds_s():
    spec = rlds(
        a=tensor("float64", ("-1", "3")),
        b=tensor("uint8", ("2", "2")),
        c=tensor("string", ("2",)),
        d=tensor("float32", ("7",), encoding="zlib"),
        e=tensor("int32", (), cls="scalar.Scalar"),
        f={"pythonClassName": "tensorflow_datasets.core.features.class_label_feature.ClassLabel",
           "classLabel": {"numClasses": "3"}},
    )  # fmt: skip
    ours = parse_features(spec)
    assert ours == tfds_fields(spec)
    assert (
        ours["a"].shape == (-1, 3)
        and ours["c"].dtype == "object"
        and ours["d"] == FieldInfo("d", "steps/d", "object", (), True, "tensor")
    )


@pytest.mark.parametrize(
    "spec, message",
    [
        ([], "feature '/': expected an object"),
        ({"type": "FeaturesDict", "content": {}}, "legacy features.json format"),
        (rlds(a=tensor("complex128")), "feature 'steps/a': unknown dtype 'complex128'"),
        (rlds(a=tensor("float32", ("x",))), "feature 'steps/a': bad shape"),
        (rlds(a={"pythonClassName": "my.Video", "video": {}}), "feature 'steps/a': class 'Video' is not supported"),
        (rlds(a={"pythonClassName": "x.features.tensor_feature.Tensor"}), "feature 'steps/a': expected 'tensor'"),
    ],
)
def test_a_bad_feature_spec_is_one_line_naming_the_feature(spec, message):
    with pytest.raises(FeatureSpecError) as e:
        parse_features(spec)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_bad_features_json_stops_the_dataset_with_one_line(bridge_root, tmp_path):
    root = tmp_path / "bridge_dataset" / "1.0.0"
    root.mkdir(parents=True)
    (root / "dataset_info.json").write_text((bridge_root / "bridge_dataset/1.0.0/dataset_info.json").read_text())
    for text, message in [
        ("{not json", "features.json: not valid JSON"),
        (json.dumps(rlds(a=tensor("float32", ("x",)))), "features.json: not a TFDS feature spec (feature 'steps/a'"),
    ]:
        (root / "features.json").write_text(text)
        with pytest.raises(RLDSError, match="^dataset 'bridge_orig': ") as e:
            _ = RLDSDataset(str(root), "bridge_orig").fields
        assert message in str(e.value) and "\n" not in str(e.value)


# ---------------------------------------------------------------- split specs

LAYOUTS = [
    {"train": [25], "val": [25]},  # the Bridge slice
    {"train": [7, 8, 10], "val": [3], "test": [0, 4]},  # several shards, an empty one
    {"train": [1]},
]
SPECS = [
    "train", "val", "train+val", "val+train", "all", "train[:10%]", "train[5:20]", "train[-3:]", "train[:-3]",
    "train[:50%]+val[10:]", "train[10%:20%]", "train[-10%:]", "train[:-10%]", "train[33%:66%]", "train[:12.5%]",
    "train[1%:]", "train[:99%]", "train[0:0]", "train[3:2]", "train[:0%]", "train[10%:20]", "train[10:20%]",
    "train[1_0:]", "train[:1.5%]", "train[-100%:100%]", "train[:]x", "train[]", "train[:]", "train[1:2:3]",
    "train[5]", "train[1.5:]", "train[:200%]", "train[:-101%]", "all[:10%]", "train val", "train++val", "",
    "train[0shard]", "train[1shard:]", "train[:-1shard]", "train[-1shard]", "train[1shard:3shard]", "val[:3]",
    "train[:26]", "train[-26:]", "nope", "train+nope", " train + val ", "train[a:]", "Train",
]  # fmt: skip


def tfds_ranges(spec: str, layout: dict) -> list[tuple[str, int, int]]:
    infos = {k: types.SimpleNamespace(num_examples=sum(v), shard_lengths=v) for k, v in layout.items()}
    absolute = tfds.core.ReadInstruction.from_spec(spec).to_absolute(infos)
    n = {k: sum(v) for k, v in layout.items()}
    return [(a.splitname, a.from_ or 0, n[a.splitname] if a.to is None else a.to) for a in absolute]


def outcome(f, *args):
    try:
        return f(*args)
    except Exception as e:  # TFDS raises ValueError, NotImplementedError, ...: refused is what counts
        return ("refused", type(e).__name__ if not isinstance(e, SplitSpecError) else "refused")


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda x: "+".join(f"{k}{v}" for k, v in x.items()))
def test_split_specs_resolve_as_tfds_resolves_them(layout):
    refused = 0
    for spec in SPECS:
        ours, theirs = outcome(resolve, spec, layout), outcome(tfds_ranges, spec, layout)
        if isinstance(theirs, tuple):  # TFDS refuses it: so do we, with our one-line error
            assert isinstance(ours, tuple), (spec, ours, theirs)
            refused += 1
        else:
            assert ours == theirs, spec
    assert 10 < refused < len(SPECS) - 15


def test_percent_boundaries_round_exactly_as_tfds_does():
    # every split size to 400 and percents whose products land on .5 (Python's round: half to even)
    for n in range(1, 401):
        layout = {"train": [n]}
        for p in ("10", "12.5", "33", "50", "-2.5", "1", "99.5", "0.5"):
            spec = f"train[:{p}%]"
            assert resolve(spec, layout) == tfds_ranges(spec, layout), (n, p)
    assert resolve("train[:10%]", {"train": [25]}) == [("train", 0, 2)]  # 2.5 -> 2
    assert resolve("train[:10%]", {"train": [35]}) == [("train", 0, 4)]  # 3.5 -> 4


def test_split_names_and_one_line_errors(bridge_root):
    assert split_names("train[:10%] + val[5:]") == ["train", "val"]
    assert split_names("all") == ["all"]
    ds = RLDSDataset(str(bridge_root / "bridge_dataset" / "1.0.0"), "bridge_orig")
    assert [(s.start, s.stop) for s in ds.plan("all")] == [(0, 25), (0, 25)]
    assert [(s.start, s.stop) for s in ds.plan("train[:10%]+val[-3:]")] == [(0, 2), (22, 25)]
    for spec, message in [
        ("train[:200%]", "bad split 'train[:200%]': 'train[:200%]': percent boundaries must be within [-100, 100]"),
        ("train[5]", "bad split 'train[5]': 'train[5]': episodes and percents take a slice, [from:to]"),
        ("train[:26]", "bad split 'train[:26]': 'train' has 25 episode(s): [0:26] is out of range"),
        ("train[1.5:]", "bad split 'train[1.5:]': 'train[1.5:]': invalid literal for int() with base 10: '1.5'"),
        (
            "train[a:]",
            "bad split 'train[a:]': unrecognized split format 'train[a:]' (e.g. train, train[:10%], "
            "train[5:20], train+val)",
        ),
        ("test", "no split 'test' (has: train, val)"),
        ("train+train[3:]", "bad split 'train+train[3:]': episodes 3..24 of 'train' are named twice"),
    ]:
        with pytest.raises(RLDSError) as e:
            ds.plan(spec)
        assert str(e.value) == f"dataset 'bridge_orig': {message}"
