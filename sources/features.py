"""A dataset's features.json (TFDS's feature spec, the JSON form of its `Feature` proto) flattened to the
leaves a tf.train.Example holds, without TFDS.

RLDS writes `{"pythonClassName": ".../FeaturesDict", "featuresDict": {"features": {"steps": Dataset of a
FeaturesDict, "episode_metadata": FeaturesDict}}}`; each leaf is a Tensor or Scalar (`tensor`: shape,
dtype, encoding), an Image (`image`: stored encoded), a Text or a ClassLabel (an int64). A leaf is keyed
in the Example by its path joined with "/" (`steps/observation/state`); a Dataset's leaves hold every
step's values one after another. Checked against TFDS's own `FeatureConnector.from_json` on every dataset
of the sample corpus and the real Bridge slice (tests/sources/test_specs.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The proto's JSON names: protobuf's JSON parser (which TFDS uses) takes the camelCase and the field name.
_FIELD_NAMES = {
    "pythonClassName": "python_class_name",
    "featuresDict": "features_dict",
    "classLabel": "class_label",
    "encodingFormat": "encoding_format",
}


class FeatureSpecError(ValueError):
    """A features.json this reader cannot use; one line naming the feature and what is wrong."""


@dataclass(frozen=True)
class FieldInfo:
    """How one leaf feature is serialized: the parse dtype and the per-step shape."""

    key: str  # step-relative ("observation/state") or "episode_metadata/..."
    serialized_key: str  # the tf.train.Example key ("steps/observation/state")
    dtype: str  # numpy dtype name of the decoded value ("float32", "bool", "object" for bytes)
    shape: tuple[int, ...]  # per step (per episode for metadata), without the leading T
    per_step: bool
    kind: str  # "tensor", "image", "text"
    pixel_dtype: str = ""  # an image's pixels as declared: "uint8" (a camera), "float32" (a depth map)
    pixel_shape: tuple[int, ...] = ()  # an image's declared (H, W, C), -1 where free


def _get(spec: dict, name: str, where: str, kind: type = dict):
    value = spec.get(name, spec.get(_FIELD_NAMES.get(name, name)))
    if not isinstance(value, kind):
        raise FeatureSpecError(f"feature '{where or '/'}': expected '{name}' ({kind.__name__}), got {value!r:.80}")
    return value


def _shape(tensor: dict, where: str) -> tuple[int, ...]:
    dims = tensor.get("shape", {})
    dims = dims.get("dimensions", []) if isinstance(dims, dict) else None
    try:
        shape = tuple(int(d) for d in dims)
    except (TypeError, ValueError):
        shape = None
    if shape is None or any(d < -1 for d in shape):
        raise FeatureSpecError(f"feature '{where}': bad shape {tensor.get('shape')!r:.80}")
    return shape


def _dtype(name, where: str) -> np.dtype:
    if name == "string":
        return np.dtype(object)
    try:
        dtype = np.dtype(name)
    except TypeError:
        dtype = None
    if not isinstance(name, str) or dtype is None or dtype.kind not in "biuf":
        raise FeatureSpecError(f"feature '{where}': unknown dtype {name!r:.40}")
    return dtype


def _leaf(spec: dict, cls: str, path: str, per_step: bool) -> FieldInfo:
    key = path[len("steps/") :] if per_step and path.startswith("steps/") else path
    if cls in ("Tensor", "Scalar"):
        tensor = _get(spec, "tensor", path)
        dtype, shape = _dtype(tensor.get("dtype"), path), _shape(tensor, path)
        if str(tensor.get("encoding", "none")).lower() != "none":  # stored encoded (kuka's zlib state)
            return FieldInfo(key, path, "object", (), per_step, "tensor")  # bytes per step
        return FieldInfo(key, path, dtype.name, shape, per_step, "tensor")
    if cls == "Image":
        image = _get(spec, "image", path)
        pixels = _dtype(image.get("dtype", "uint8"), path).name
        # encoded bytes, never decoded here
        return FieldInfo(key, path, "object", (), per_step, "image", pixels, _shape(image, path))
    if cls == "Text":
        return FieldInfo(key, path, "object", (), per_step, "text")
    if cls == "ClassLabel":
        return FieldInfo(key, path, "int64", (), per_step, "tensor")
    raise FeatureSpecError(
        f"feature '{path}': class '{cls}' is not supported (FeaturesDict, Dataset, Tensor, Scalar, Image, Text, "
        "ClassLabel)"
    )


def _walk(spec, path: str, per_step: bool, out: dict[str, FieldInfo]) -> None:
    if not isinstance(spec, dict):
        raise FeatureSpecError(f"feature '{path or '/'}': expected an object, got {spec!r:.80}")
    if "type" in spec and "content" in spec:
        raise FeatureSpecError(
            f"feature '{path or '/'}': TFDS's legacy features.json format (type/content) is not supported"
        )
    cls = _get(spec, "pythonClassName", path, str).rsplit(".", 1)[-1]
    if cls == "FeaturesDict":
        features = _get(_get(spec, "featuresDict", path), "features", path)
        for name, sub in features.items():
            _walk(sub, f"{path}/{name}" if path else name, per_step, out)
    elif cls == "Dataset":
        _walk(_get(_get(spec, "sequence", path), "feature", path), path, True, out)
    else:
        leaf = _leaf(spec, cls, path, per_step)
        out[leaf.key] = leaf


def parse_features(spec) -> dict[str, FieldInfo]:
    """Every leaf of a features.json (parsed JSON), keyed step-relative for the steps' leaves."""
    out: dict[str, FieldInfo] = {}
    _walk(spec, "", False, out)
    return out
