"""The built-in sample corpus: a small RLDS dataset for each registry dataset, in its real schema.

    python -m sources.sample --out DIR [--episodes N] [--datasets a,b]

Every dataset lands in DIR/<rlds dir name>/<version>/ as TFDS writes it (TFRecord shards,
dataset_info.json, features.json: `tfds.builder_from_directory` opens it), with the key names,
nesting, dtypes, encodings and image sizes of the public release (manifests/sample_schemas.yaml).
The movement is synthetic but plausible: smooth trajectories (sums of low-frequency sinusoids)
scaled per dataset and per axis, states that integrate the actions, gripper open/close events, a
few outlier steps; the raw fields carry each dataset's own conventions (relative gripper pulses,
inverted or signed grippers, quaternions, absolute poses, zlib-encoded state), the inverse of
what transforms/ undoes. Splits: train (N episodes of 12-40 steps) and val (N // 3, at least 1).
Deterministic: each dataset is seeded by a hash of its name; the same arguments give the same bytes.
It is synthetic data for exercising the pipeline, never for training.

Default corpus (6 + 2 episodes x 28 datasets, real image sizes): about 40 MB, about 35 s on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from manifests.extras import install_hint, missing
from manifests.registry import REGISTRY_DIR, load_registry, load_yaml

CORPUS_VERSION = "2"
DEFAULT_EPISODES = 6
STEPS = (12, 40)  # episode lengths, inclusive
JPEG_QUALITY = 85
SPIKE_RATE, SPIKE_FACTOR = 0.015, 5.0  # a few jerky teleoperation steps
SCHEMAS_FILE = REGISTRY_DIR / "sample_schemas.yaml"
MARKER = ".complete"
TASKS = (
    "pick up the red block",
    "put the cup in the sink",
    "open the drawer",
    "push the blue cube left",
    "place the carrot on the plate",
    "close the microwave door",
    "stack the green block on the yellow one",
)

# raw gripper encoding (sample_schemas.yaml) -> the registry conventions that read it
GRIPPER_ENCODINGS = {
    "pulses": ("relative",),
    "binary_open": ("absolute_open",), "bool_open": ("absolute_open",),
    "binary_closed": ("absolute_closed",),
    "continuous_open": ("continuous_open", "absolute_open"), "continuous_closed": ("absolute_closed",),
    "signed_open": ("signed_open",), "signed_closed": ("signed_closed",),
    "continuous_signed_open": ("signed_open",), "continuous_signed_closed": ("signed_closed",),
    "none": ("always_open", "always_closed"),
}  # fmt: skip


def default_corpus_dir() -> Path:
    """Where runs without --data-dir find (and first generate) the sample corpus."""
    root = os.environ.get("SPATIAL_PIPELINE_CACHE") or Path.home() / ".cache" / "spatial-action-pipeline"
    return Path(root) / f"sample-corpus-v{CORPUS_VERSION}"


def seed_of(name: str) -> int:
    """A seed from a dataset name, stable across processes (unlike Python's salted hash())."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


# ---------------------------------------------------------------- schema


@dataclass(frozen=True)
class Spec:
    """One leaf feature of a schema."""

    kind: str  # "image", "depth_image" (float32, 1 channel), "text" (tfds Text), "string" (string Tensor), "tensor"
    dtype: str  # numpy dtype of the values the generator writes
    shape: tuple[int, ...]  # per step; (H, W) for images
    scalar: bool = False  # declared as tfds Scalar
    zlib: bool = False  # Tensor(encoding='zlib')


_SPEC = re.compile(
    r"^(image|depth_image|text|string|bool|int32|int64|float32|float64)(?:\[([\d,\s]+)\])?((?:\s+(?:scalar|zlib))*)$"
)


def parse_spec(spec: str) -> Spec:
    m = _SPEC.match(str(spec).strip())
    if not m:
        raise ValueError(f"{SCHEMAS_FILE.name}: bad feature spec {spec!r}")
    kind, dims, flags = m.group(1), m.group(2), m.group(3).split()
    shape = tuple(int(d) for d in dims.split(",")) if dims else ()
    if kind in ("image", "depth_image", "text", "string"):
        return Spec(kind, {"image": "uint8", "depth_image": "float32"}.get(kind, "object"), shape)
    return Spec("tensor", kind, shape, scalar="scalar" in flags, zlib="zlib" in flags)


def leaves(tree: dict, prefix: str = "") -> dict[str, Spec]:
    """A nested feature mapping -> {flat key: Spec}; keys that contain "/" stay one key."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(leaves(value, f"{prefix}{key}/"))
        else:
            out[prefix + key] = parse_spec(value)
    return out


def scale_image(spec: Spec, scale: float) -> Spec:
    if spec.kind != "image" or scale == 1:
        return spec
    return replace(spec, shape=tuple(max(8, round(d * scale)) for d in spec.shape))


def load_schemas(path: str | Path = SCHEMAS_FILE) -> dict:
    """The schema file with each dataset's step leaves resolved: {name: {..., "steps": {key: Spec}}}."""
    doc = load_yaml(path)
    scale = float(doc.get("image_scale", 1.0))
    out = {}
    for name, entry in doc["datasets"].items():
        steps = {k: scale_image(s, scale) for k, s in leaves(entry["features"]["steps"]).items()}
        out[name] = {
            **entry,
            "steps": steps,
            "empty_instruction": name in doc.get("empty_instruction", ()),
            "image_scale": scale,
        }
    return out


def schema_problems(cfg, schema: dict) -> list[str]:
    """What in a schema does not fit its registry entry: missing keys, slices past a field's end,
    a gripper encoding the registry's convention cannot read."""
    steps, a = schema["steps"], cfg.action
    parts = [a.translation, a.gripper, *cfg.proprio]
    if a.rotation.format != "none":
        parts.append(a.rotation)
    if a.relabel_from_state:
        parts.append(a.relabel_from_state)
    problems = []
    for part in parts:
        if part.key is None:
            continue
        if part.key not in steps:
            problems.append(f"step key '{part.key}' missing")
            continue
        width = int(np.prod(steps[part.key].shape)) if steps[part.key].shape else 1
        hi = part.slice[1] if part.slice else width
        zlib_part = getattr(part, "encoding", "none") == "zlib_float32"
        if not zlib_part and hi > width:
            problems.append(f"'{part.key}' has {width} dims, slice {list(part.slice)} needs {hi}")
        if zlib_part and not steps[part.key].zlib:
            problems.append(f"'{part.key}' is read as zlib float32 but not stored zlib-encoded")
    cameras = list(cfg.primary_choices or [cfg.primary_image])
    for key in (*cameras, cfg.wrist_image, cfg.instruction.key if cfg.instruction else None):
        if key and key not in steps:
            problems.append(f"step key '{key}' missing")
    encoding = schema["movement"]["gripper"]
    if cfg.gripper_convention not in GRIPPER_ENCODINGS.get(encoding, ()):
        problems.append(f"gripper encoding '{encoding}' does not fit convention '{cfg.gripper_convention}'")
    return problems


# ---------------------------------------------------------------- TFDS features


def tfds_feature(spec: Spec):
    import tensorflow_datasets as tfds

    f = tfds.features
    if spec.kind == "image":
        return f.Image(shape=(*spec.shape, 3), encoding_format="jpeg")
    if spec.kind == "depth_image":  # TFDS stores it as a PNG of the float32 bits
        return f.Image(shape=(*spec.shape, 1), dtype=np.float32)
    if spec.kind == "text":
        return f.Text()
    if spec.kind == "string":
        return f.Tensor(shape=(), dtype=np.str_)
    if spec.scalar:
        return f.Scalar(dtype=np.dtype(spec.dtype))
    return f.Tensor(shape=spec.shape, dtype=np.dtype(spec.dtype), encoding="zlib" if spec.zlib else "none")


def tfds_features(tree: dict, scale: float = 1.0, top: bool = True):
    """The TFDS FeaturesDict of a schema's `features` tree ("steps" becomes an RLDS Dataset)."""
    import tensorflow_datasets as tfds

    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            sub = tfds_features(value, scale, top=False)
            out[key] = tfds.features.Dataset(sub) if top and key == "steps" else sub
        else:
            out[key] = tfds_feature(scale_image(parse_spec(value), scale))
    return tfds.features.FeaturesDict(out)


# ---------------------------------------------------------------- movement


def smooth(rng, t: int, dims: int) -> np.ndarray:
    """[t, dims] smooth signals in about [-1, 1]: three low-frequency sinusoids, random phases and weights."""
    s = np.linspace(0, 1, t)[:, None]
    waves = [
        rng.uniform(0.3, 1.0, dims) * np.sin(2 * np.pi * (f * s + rng.uniform(0, 1, dims))) for f in (0.5, 1.0, 2.0)
    ]
    return sum(waves) / 2.3


def with_spikes(rng, x: np.ndarray) -> np.ndarray:
    """A few steps (SPIKE_RATE) several times larger than their neighbours."""
    return np.where((rng.random(len(x)) < SPIKE_RATE)[:, None], SPIKE_FACTOR * x, x)


def gripper_track(rng, t: int) -> np.ndarray:
    """Absolute gripper state, 1 = open: opens, closes on the object, in most episodes reopens."""
    g = np.ones(t)
    close = int(rng.integers(t // 4, t // 2 + 1))
    g[close:] = 0
    if rng.random() < 0.6:
        g[int(rng.integers(close + 3, t - 1)) :] = 1
    return g


def padded(values, n: int = 3) -> np.ndarray:
    v = np.asarray(values or [], float)
    return np.pad(v, (0, n - len(v)))


def motion(rng, t: int, movement: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per-step translation and rotation [t, 3] each, in the dataset's own action units."""
    move = with_spikes(rng, smooth(rng, t, 3) * padded(movement["translation"]))
    turn = with_spikes(rng, smooth(rng, t, 3) * padded(movement.get("rotation")))
    return move, turn


def integrate(steps: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Pose before each step: start + the sum of the steps taken so far (pose[t+1] - pose[t] = steps[t])."""
    return start + np.concatenate([np.zeros((1, steps.shape[1])), np.cumsum(steps, axis=0)[:-1]])


def euler_to_quaternion(rpy: np.ndarray) -> np.ndarray:
    """Extrinsic x-y-z angles [N, 3] -> unit quaternions (x, y, z, w) [N, 4]."""
    r, p, y = (rpy[:, i] / 2 for i in range(3))
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    return np.column_stack(
        [
            sr * cp * cy - cr * sp * sy,
            cr * sp * cy + sr * cp * sy,
            cr * cp * sy - sr * sp * cy,
            cr * cp * cy + sr * sp * sy,
        ]
    )


def _moving(rng, g: np.ndarray) -> np.ndarray:
    """A continuous gripper command (1 = open): decisive values with a little jitter, and one or two
    in-between values on the way to each new state."""
    raw = np.where(g > 0.5, rng.uniform(0.96, 1.0, len(g)), rng.uniform(0.0, 0.04, len(g)))
    for i in np.flatnonzero(np.diff(g)) + 1:
        ramp = np.linspace(g[i - 1], g[i], int(rng.integers(2, 4)) + 1)[1:-1]
        raw[i : i + len(ramp)] = ramp[: len(raw) - i]
    return raw


def encode_gripper(g: np.ndarray, encoding: str, rng) -> np.ndarray:
    """The raw gripper column a dataset stores for the absolute state g (1 = open)."""
    if encoding == "pulses":  # +1 close / -1 open where the state changes (sometimes held a step), else ~0
        raw = np.where(rng.random(len(g)) < 0.15, rng.uniform(-0.05, 0.05, len(g)), 0.0)
        for i in np.flatnonzero(np.diff(np.concatenate([[1.0], g]))):
            raw[i : i + int(rng.integers(1, 3))] = 1.0 if g[i] < 0.5 else -1.0
        return raw
    return {
        "binary_open": lambda: g,
        "bool_open": lambda: g,
        "binary_closed": lambda: 1 - g,
        "signed_open": lambda: 2 * g - 1,
        "signed_closed": lambda: 1 - 2 * g,
        "continuous_open": lambda: _moving(rng, g),
        "continuous_closed": lambda: 1 - _moving(rng, g),
        "continuous_signed_open": lambda: 2 * _moving(rng, g) - 1,
        "continuous_signed_closed": lambda: 1 - 2 * _moving(rng, g),
    }[encoding]()


# ---------------------------------------------------------------- columns


def embedding(text: str, dims: int) -> np.ndarray:
    """A stand-in sentence embedding: a unit vector determined by the text."""
    v = np.random.default_rng(seed_of(text)).standard_normal(dims)
    return (v / np.linalg.norm(v)).astype(np.float32)


def default_column(key: str, spec: Spec, t: int, task: str, rng) -> np.ndarray | list:
    """A step field that no registry part names, filled by its kind and name."""
    name = key.rsplit("/", 1)[-1]
    last = np.arange(t) == t - 1
    if spec.kind in ("text", "string"):
        return [task if "instruction" in name else ""] * t
    if spec.kind == "image":
        return []
    if spec.kind == "depth_image":  # a plane a metre or two away: smooth, so it compresses
        return [np.full((*spec.shape, 1), 1.0 + 0.01 * i, np.float32) for i in range(t)]
    if name == "is_first":
        return np.arange(t) == 0
    if name in ("is_last", "is_terminal"):
        return last
    if name in ("reward", "discount"):
        return (last if name == "reward" else np.ones(t)).astype(spec.dtype)
    if name == "terminate_episode":
        if spec.shape == (3,):  # one-hot: [1, 0, 0] terminates, [0, 1, 0] continues
            return np.where(last[:, None], [1, 0, 0], [0, 1, 0]).astype(spec.dtype)
        return last.astype(spec.dtype)
    if "embedding" in name:
        return np.tile(embedding(task, spec.shape[-1]), (t, 1))
    if spec.dtype.startswith("float"):
        return (0.01 * rng.standard_normal((t, *spec.shape))).astype(spec.dtype)
    return np.zeros((t, *spec.shape), spec.dtype)


def put(col: np.ndarray, part, values: np.ndarray) -> None:
    """Write values [T, k] into a registry part (key + optional [lo, hi) slice) of a column, in place."""
    view = col.reshape(len(col), -1)
    lo, hi = part.slice or (0, view.shape[1])
    values = np.asarray(values).reshape(len(col), -1)[:, : hi - lo]
    if col.dtype == bool:
        values = values > 0.5
    elif col.dtype.kind in "iu":
        values = np.rint(values)
    view[:, lo : lo + values.shape[1]] = values


def code_points(text: str, width: int, t: int) -> np.ndarray:
    codes = np.zeros((t, width), np.int32)
    codes[:, : len(text)] = [ord(c) for c in text[:width]]
    return codes


# ---------------------------------------------------------------- images


def backdrop(rng, h: int, w: int) -> np.ndarray:
    """A smooth coloured scene (compresses like a camera frame, unlike noise)."""
    y, x = np.linspace(0, 1, h, dtype=np.float32)[:, None], np.linspace(0, 1, w, dtype=np.float32)[None, :]
    base, tilt, wave = rng.uniform(50, 170, 3), rng.uniform(-50, 50, (3, 2)), rng.uniform(2, 6, 3)
    return (
        np.stack(
            [base[c] + tilt[c, 0] * x + tilt[c, 1] * y + 25 * np.sin(wave[c] * (x + y) + c) for c in range(3)], axis=-1
        )
        .clip(0, 255)
        .astype(np.uint8)
    )


def frame(scene: np.ndarray, where: np.ndarray, is_open: bool) -> np.ndarray:
    """The scene with the end effector as a square at `where` (in [0, 1]^2), green open, red closed."""
    h, w = scene.shape[:2]
    img = scene.copy()
    cy, cx, s = int(where[1] * (h - 1)), int(where[0] * (w - 1)), max(2, min(h, w) // 10)
    img[max(cy - s, 0) : cy + s, max(cx - s, 0) : cx + s] = (40, 200, 60) if is_open else (220, 40, 40)
    return img


def image_column(rng, spec: Spec, xy: np.ndarray, g: np.ndarray) -> list[bytes]:
    from transforms.frames import encode_jpeg

    lo, hi = xy.min(0), xy.max(0)
    where = 0.2 + 0.6 * (xy - lo) / np.maximum(hi - lo, 1e-9)
    scene = backdrop(rng, *spec.shape)
    return [encode_jpeg(frame(scene, where[i], g[i] > 0.5), JPEG_QUALITY) for i in range(len(g))]


# ---------------------------------------------------------------- episodes


def metadata_value(key: str, spec: Spec, where: str, index: int, task: str):
    if spec.kind in ("text", "string"):
        return task if "instruction" in key else f"synthetic/{where}/episode_{index:05d}.npy"
    if key == "has_language":
        return bool(task)
    if spec.dtype == "bool":
        return True
    if "embedding" in key:
        return embedding(task, spec.shape[-1])
    return np.full(spec.shape, index, spec.dtype)


def nest(tree: dict, flat: dict, prefix: str = "") -> dict:
    """Flat values back into the schema's nesting (a key containing "/" stays one key)."""
    return {k: nest(v, flat, f"{prefix}{k}/") if isinstance(v, dict) else flat[prefix + k] for k, v in tree.items()}


def make_episode(cfg, schema: dict, rng, t: int, task: str, index: int, split: str) -> dict:
    """One episode as TFDS's encoder takes it: {"steps": {key: [T values]}, other episode fields}."""
    steps, mv, a = schema["steps"], schema["movement"], cfg.action
    cols = {k: default_column(k, s, t, task, rng) for k, s in steps.items()}

    move, turn = motion(rng, t, mv)
    still = rng.random(t) < mv.get("still", 0.0)  # steps that do not move at all (DROID has them)
    move[still], turn[still] = 0.0, 0.0
    relabel = a.relabel_from_state is not None
    if relabel:  # Bridge: the robot stands still on the first step, whose action is all zeros
        move[0] = turn[0] = 0
    g = np.zeros(t) if cfg.gripper_convention == "always_closed" else gripper_track(rng, t)
    pose = integrate(np.hstack([move, turn]), rng.uniform(-0.3, 0.3, 6) * padded(mv["translation"] + [1] * 3, 6) * 10)

    state = np.hstack([pose, g[:, None]])  # [xyz, rpy, gripper open] fills the proprio parts in order
    k = 0
    for part in cfg.proprio:
        col = cols[part.key]  # a zlib-encoded field too: TFDS compresses the floats when it writes them
        width = part.dims or (part.slice[1] - part.slice[0] if part.slice else col.reshape(t, -1).shape[1])
        put(col, part, np.pad(state[:, k : k + width], ((0, 0), (0, max(0, width - state[:, k : k + width].shape[1])))))
        k += width

    if "offset" in mv:  # absolute target poses: where each step's action leads
        target = (
            np.asarray(mv["offset"], float) + integrate(np.hstack([move, turn]), np.zeros(6)) + np.hstack([move, turn])
        )
        move, turn = target[:, :3], target[:, 3:]
    if relabel:  # commanded movement; what the robot reached (the state) differs a little
        noise = 0.1 * rng.standard_normal((t, 6)) * padded(mv["translation"] + mv.get("rotation", []), 6)
        noise[0] = 0
        move, turn = move + noise[:, :3], turn + noise[:, 3:]
    put(cols[a.translation.key], a.translation, move)
    if a.rotation.format != "none":
        put(cols[a.rotation.key], a.rotation, euler_to_quaternion(turn) if a.rotation.format == "quaternion" else turn)
    if mv["gripper"] != "none":
        put(cols[a.gripper.key], a.gripper, encode_gripper(g, mv["gripper"], rng))

    if cfg.instruction and cfg.instruction.encoding == "unicode_codepoints":
        cols[cfg.instruction.key] = code_points(task, steps[cfg.instruction.key].shape[0], t)
    for key, spec in steps.items():
        if spec.kind == "image":
            cols[key] = image_column(rng, spec, pose[:, :2], g)

    features = schema["features"]
    example = {"steps": nest(features["steps"], {k: list(v) for k, v in cols.items()})}
    for key, sub in features.items():
        if key != "steps":
            meta = {
                k: metadata_value(k.rsplit("/", 1)[-1], s, f"{cfg.name}/{split}", index, task)
                for k, s in leaves({key: sub}).items()
            }
            example.update(nest({key: sub}, meta))
    return example


def episodes_of(cfg, schema: dict, episodes: int) -> dict[str, list[tuple[str, dict]]]:
    """Both splits of one dataset, drawn from one generator seeded by the dataset's name."""
    rng = np.random.default_rng(seed_of(cfg.name))
    out = {}
    for split, n in (("train", episodes), ("val", max(1, episodes // 3))):
        out[split] = []
        for i in range(n):
            t = int(rng.integers(STEPS[0], STEPS[1] + 1))
            task = TASKS[int(rng.integers(len(TASKS)))]
            if split == "train" and i == 1 and schema["empty_instruction"]:
                task = ""
            out[split].append((f"{i:05d}", make_episode(cfg, schema, rng, t, task, i, split)))
    return out


# ---------------------------------------------------------------- writing


def write_rlds(name: str, version: str, data_dir: str | Path, features, splits: dict, description: str) -> Path:
    """Episodes written as RLDS by TFDS's own writer (TFRecord, in the given order) under
    data_dir/<name>/<version>/, the same bytes on every run; returns that directory. `features`: a TFDS
    FeaturesDict; `splits`: split -> iterable of (key, episode example)."""
    import tensorflow_datasets as tfds

    with contextlib.redirect_stdout(io.StringIO()):  # TFDS prints "Downloading and preparing ..."
        tfds.dataset_builders.store_as_tfds_dataset(
            name=name,
            version=version,
            data_dir=str(data_dir),
            features=features,
            split_datasets=splits,
            description=description,
            file_format="tfrecord",
            disable_shuffling=True,
        )
    path = Path(data_dir) / name / version
    info = json.loads((path / "dataset_info.json").read_text())
    info.pop("moduleName", None)  # where the writer ran from: the only field that differs between runs
    (path / "dataset_info.json").write_text(json.dumps(info, indent=2, sort_keys=True))
    return path


def write_dataset(cfg, schema: dict, out_dir: Path, episodes: int) -> Path:
    """One dataset written by TFDS under out_dir/<tfds name>/<version>/; returns that directory."""
    return write_rlds(
        schema.get("tfds_name", cfg.name),
        cfg.version,
        out_dir,
        tfds_features(schema["features"], schema["image_scale"]),
        episodes_of(cfg, schema, episodes),
        f"Synthetic sample of {cfg.name} in its public RLDS schema (pipeline.sample).",
    )


def quiet_tfds() -> None:
    """TFDS writes with TensorFlow, which logs its CPU features at start, and warns "Variant folder ...
    has no dataset_info.json" once per dataset while it writes that very file: noise, not news."""
    import logging

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # read when TensorFlow loads
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # its notice is printed whatever the level; no math here
    logging.getLogger("absl").setLevel(logging.ERROR)


class SampleCorpusUnavailable(RuntimeError):
    """The sample corpus cannot be written by this install; the message says what to install."""


def require_writer() -> None:
    """SampleCorpusUnavailable unless TensorFlow and TFDS can be imported (not in the worker install)."""
    absent = missing("sample")
    if absent:
        raise SampleCorpusUnavailable(
            f"the built-in sample corpus is written by TFDS with TensorFlow: {' and '.join(absent)} not "
            f"installed (the worker install has no TensorFlow or TFDS); install the sample extra, {install_hint('sample')}, "
            "or give --data-dir"
        )


def generate(
    out_dir: str | Path, episodes: int = DEFAULT_EPISODES, names: list[str] | None = None, verbose: bool = True
) -> Path:
    """Write the sample datasets (all registry datasets, or `names`) under out_dir."""
    require_writer()
    quiet_tfds()
    import tensorflow_datasets as tfds

    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    registry, schemas = load_registry(), load_schemas()
    names = list(names or registry.datasets)
    for name in names:
        if name not in registry.datasets:
            raise ValueError(f"unknown dataset '{name}'")
        if name not in schemas:
            raise ValueError(f"{SCHEMAS_FILE.name}: no schema for dataset '{name}'")
        problems = schema_problems(registry.datasets[name], schemas[name])
        if problems:
            raise ValueError(f"{SCHEMAS_FILE.name}: dataset '{name}': {problems[0]}")
    tfds.disable_progress_bar()
    out_dir = Path(out_dir)
    for name in names:
        path = write_dataset(registry.datasets[name], schemas[name], out_dir, episodes)
        if verbose:
            print(f"sample: {name} -> {path}", file=sys.stderr)
    shutil.rmtree(out_dir / "downloads", ignore_errors=True)  # TFDS's empty download area
    return out_dir


def _recipe(episodes: int) -> str:
    """What a finished corpus was made from: its version, size and the sources that shape its bytes."""
    sources = b"".join(f.read_bytes() for f in (Path(__file__), SCHEMAS_FILE, REGISTRY_DIR / "datasets.yaml"))
    return json.dumps(
        {"corpus_version": CORPUS_VERSION, "episodes": episodes, "sources_sha256": hashlib.sha256(sources).hexdigest()},
        sort_keys=True,
    )


def ensure_corpus(out_dir: str | Path | None = None, episodes: int = DEFAULT_EPISODES) -> Path:
    """The sample corpus at out_dir (default: default_corpus_dir()), generated on first use.

    It is written to a temporary sibling and renamed into place with a marker naming its
    CORPUS_VERSION, episode count and sources, so a half-written or outdated corpus is never reused.
    TFDS writes with TensorFlow: in a process of its own, so that TensorFlow never loads into the
    job's (its bundled LLVM crashes a later import of torch's triton in the same process)."""
    out = Path(out_dir) if out_dir else default_corpus_dir()
    recipe = _recipe(episodes)

    def complete() -> bool:
        return (out / MARKER).is_file() and (out / MARKER).read_text() == recipe

    if complete():
        return out
    require_writer()
    print(f"sample: generating the built-in sample corpus in {out} (once)", file=sys.stderr)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "sources.sample", "--out", str(tmp), "--episodes", str(episodes), "--quiet"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"generating the sample corpus failed:\n{r.stderr[-3000:]}")
    (tmp / MARKER).write_text(recipe)
    if complete():  # another process finished first
        shutil.rmtree(tmp)
        return out
    old = out.with_name(f"{out.name}.old-{os.getpid()}")
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    return out


MAX_EPISODES = 1000  # a sample for exercising the pipeline; more is a typo, not a corpus


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m sources.sample",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python -m sources.sample --out sample_data --episodes 2 --datasets bridge_orig,kuka\n"
        "  python -m pipeline.run --mixture bridge --data-dir sample_data --out output/bridge_sample --no-depth\n",
    )
    p.add_argument("--out", required=True, help="directory to write the RLDS datasets into")
    p.add_argument("--episodes", type=int, default=DEFAULT_EPISODES, help="train episodes per dataset (val: a third)")
    p.add_argument("--datasets", help="comma-separated registry names (default: all)")
    p.add_argument("--quiet", action="store_true", help="no line per dataset")
    args = p.parse_args(argv)
    if not 1 <= args.episodes <= MAX_EPISODES:
        print(f"error: --episodes must be between 1 and {MAX_EPISODES}, got {args.episodes}", file=sys.stderr)
        return 2
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        print(f"error: --out '{args.out}' is a file, not a directory", file=sys.stderr)
        return 2
    try:
        generate(args.out, args.episodes, args.datasets.split(",") if args.datasets else None, verbose=not args.quiet)
    except (ValueError, SampleCorpusUnavailable) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
