"""The built-in sample corpus: small RLDS datasets in each registry dataset's real schema.

    python -m sources.sample --out DIR [--episodes N] [--datasets a,b]

Each dataset is written by TFDS itself (TFRecord shards, dataset_info.json, features.json),
with the key names, nesting, dtypes and image sizes of the public release
(manifests/sample_schemas.yaml). The movement is synthetic but plausible: smooth
trajectories whose reached states integrate the actions, gripper open/close events, a
scale per dataset, a few outliers; and the raw action fields are written in each dataset's
own convention (relative gripper pulses, inverted or signed grippers, quaternions, zlib
state), the inverse of what transforms/ undoes. Deterministic: same arguments, same bytes.
It is synthetic data for exercising the pipeline, never for training.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np

from manifests.registry import REGISTRY_DIR, load_registry, load_yaml

CORPUS_VERSION = "1"
DEFAULT_EPISODES = 6
SCHEMAS_FILE = REGISTRY_DIR / "sample_schemas.yaml"
TASKS = (
    "pick up the red block",
    "put the cup in the sink",
    "open the drawer",
    "push the blue cube left",
    "place the carrot on the plate",
    "close the microwave door",
    "stack the green block on the yellow one",
)


def default_corpus_dir() -> Path:
    """Where runs without --data-dir find (and first generate) the sample corpus."""
    root = os.environ.get("SPATIAL_PIPELINE_CACHE") or Path.home() / ".cache" / "spatial-action-pipeline"
    return Path(root) / f"sample-corpus-v{CORPUS_VERSION}"


def seed_of(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


# ---------------------------------------------------------------- schema -> TFDS features

_SPEC = re.compile(r"^(image|text|bool|bytes|float32|int32|int64)(?:\[([\d,]+)\])?$")


def parse_spec(spec: str) -> tuple[str, tuple[int, ...]]:
    m = _SPEC.match(spec.replace(" ", ""))
    if not m:
        raise ValueError(f"{SCHEMAS_FILE}: bad feature spec {spec!r}")
    return m.group(1), tuple(int(d) for d in m.group(2).split(",")) if m.group(2) else ()


def _feature(spec: str):
    import tensorflow_datasets as tfds

    kind, shape = parse_spec(spec)
    if kind == "image":
        return tfds.features.Image(shape=(*shape, 3), encoding_format="jpeg")
    if kind == "text":
        return tfds.features.Text()
    if kind == "bytes":
        return tfds.features.Tensor(shape=(), dtype=np.object_)
    dtype = {"bool": np.bool_, "float32": np.float32, "int32": np.int32, "int64": np.int64}[kind]
    return tfds.features.Tensor(shape=shape, dtype=dtype)


def _nest(flat: dict) -> dict:
    out: dict = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def features_of(schema: dict):
    import tensorflow_datasets as tfds

    steps = {k: _feature(v) for k, v in schema["steps"].items()}
    steps |= {k: _feature("bool") for k in ("is_first", "is_last", "is_terminal")}
    steps |= {k: _feature("float32") for k in ("reward", "discount")}

    def dicts(tree):
        return tfds.features.FeaturesDict({k: dicts(v) if isinstance(v, dict) else v for k, v in tree.items()})

    top = {"steps": tfds.features.Dataset(dicts(_nest(steps)))}
    meta = {k.split("/", 1)[1]: _feature(v) for k, v in schema.get("metadata", {}).items()}
    if meta:
        top["episode_metadata"] = tfds.features.FeaturesDict(meta)
    return tfds.features.FeaturesDict(top)


# ---------------------------------------------------------------- synthetic episodes


def _smooth(rng, t: int, dims: int) -> np.ndarray:
    """Sums of low-frequency sinusoids with random phases: a smooth velocity profile in [-1, 1]."""
    s = np.linspace(0, 1, t)[:, None]
    out = sum(
        rng.uniform(0.3, 1.0, dims) * np.sin(2 * np.pi * (f * s + rng.uniform(0, 1, dims))) for f in (0.5, 1.0, 2.0)
    )
    return out / 2.3


def _gripper_events(rng, t: int) -> np.ndarray:
    """Open, close to grasp, maybe reopen: 1 = open."""
    g = np.ones(t)
    close = int(rng.integers(t // 4, t // 2 + 1))
    g[close:] = 0
    if rng.random() < 0.6:
        g[int(rng.integers(close + 2, t)) if close + 2 < t else t :] = 1
    return g


def _euler_to_quaternion(rpy: np.ndarray) -> np.ndarray:
    r, p, y = (rpy[:, i] / 2 for i in range(3))
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    return np.column_stack(
        [
            sr * cp * cy - cr * sp * sy,
            cr * sp * cy + sr * cp * sy,
            cr * cp * sy - sr * sp * cy,
            cr * cp * cy + sr * sp * sy,
        ]
    )  # x, y, z, w


def _encode_gripper(g: np.ndarray, convention: str, rng) -> np.ndarray:
    """The raw column a dataset stores for absolute gripper state g (1 = open)."""
    if convention == "continuous_open":  # the gripper closes and opens over a couple of steps
        raw = g.copy()
        for i in np.flatnonzero(np.diff(g)) + 1:
            raw[i] = rng.uniform(0.2, 0.8)
        return raw
    if convention == "absolute_open":
        return g
    if convention == "absolute_closed":
        return 1 - g
    if convention == "signed_open":
        return 2 * g - 1
    if convention == "signed_closed":
        return 1 - 2 * g
    if convention == "relative":  # +1 close / -1 open on the step the state changes, else 0
        pulse = np.zeros_like(g)
        change = np.diff(np.concatenate([[1.0], g]))
        pulse[change < 0], pulse[change > 0] = 1.0, -1.0
        return pulse
    raise ValueError(convention)


def _put(columns: dict, key: str, part_slice: tuple[int, int] | None, values: np.ndarray) -> None:
    col = columns[key]
    values = values.reshape(len(values), -1)
    if col.ndim == 1:
        col[:] = values[:, 0]
    else:
        lo, hi = part_slice or (0, values.shape[1])
        col[:, lo:hi] = values[:, : hi - lo]


def _image(rng_colour: np.ndarray, h: int, w: int, pos: np.ndarray, step: int) -> np.ndarray:
    """A smooth scene with a square where the end effector is: compresses like a real frame."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.empty((h, w, 3), np.uint8)
    for c in range(3):
        img[..., c] = (rng_colour[c] + 60 * np.sin(xx / w * 3 + c + step * 0.05) + 40 * yy / h).clip(0, 255)
    cy, cx = int(h * (0.5 + 0.35 * np.tanh(pos[1]))), int(w * (0.5 + 0.35 * np.tanh(pos[0])))
    s = max(h, w) // 12
    img[max(cy - s, 0) : cy + s, max(cx - s, 0) : cx + s] = (230, 40, 40)
    return img


def make_episode(cfg, schema: dict, rng, t: int, empty_instruction: bool) -> dict:
    steps_spec = schema["steps"]
    scale = float(schema.get("scale", 0.1))
    a = cfg.action
    move = scale * _smooth(rng, t, 3)
    outliers = rng.random(t) < 0.03
    move[outliers] *= 6.0  # a few jerky steps, as teleoperation has
    rot = 0.5 * scale * _smooth(rng, t, 3)
    g = _gripper_events(rng, t)
    position = np.cumsum(move, axis=0)

    columns = {}
    for key, spec in steps_spec.items():
        kind, shape = parse_spec(spec)
        if kind in ("float32", "int32", "int64"):
            columns[key] = (
                (0.01 * rng.standard_normal((t, *shape))).astype(kind)
                if kind == "float32"
                else np.zeros((t, *shape), kind)
            )
        elif kind == "bool":
            columns[key] = np.zeros(t, bool)

    # proprio: positions that integrate the movement, in every state field
    for p in cfg.proprio:
        if p.encoding == "zlib_float32":
            pose = np.column_stack([position, rot.cumsum(0), g])[:, : p.dims].astype(np.float32)
            if p.dims > pose.shape[1]:
                pose = np.pad(pose, ((0, 0), (0, p.dims - pose.shape[1])))
            columns[p.key] = np.array([zlib.compress(row.tobytes()) for row in pose], dtype=object)
        elif p.key in columns and columns[p.key].dtype.kind == "f":
            col = columns[p.key].reshape(t, -1)
            n = min(col.shape[1], 3)
            col[:, :n] += position[:, :n]

    if a.relabel_from_state:  # Bridge: the reached state is what the transform reads
        rs = a.relabel_from_state
        state = np.column_stack([position, rot.cumsum(0)]) + rng.uniform(-0.3, 0.3, 6)
        _put(columns, rs.key, rs.slice, state[:, :6])
        commanded = np.column_stack([move, rot]) + 0.1 * scale * rng.standard_normal((t, 6))
        commanded[0] = 0  # the first step's action is all zeros in the real data
        _put(columns, a.translation.key, (0, 6), commanded)
    else:
        tr = a.translation
        lo, hi = tr.slice or (0, 3)
        _put(columns, tr.key, tr.slice, move[:, : hi - lo])
        r = a.rotation
        if r.format == "quaternion":
            _put(columns, r.key, r.slice, _euler_to_quaternion(rot))
        elif r.format == "euler":
            _put(columns, r.key, r.slice, rot)
    grip = a.gripper
    if grip.key:
        raw = _encode_gripper(g, grip.convention, rng)
        key = grip.key
        if columns[key].dtype == bool:
            columns[key][:] = raw > 0.5
        elif columns[key].dtype.kind == "i":
            columns[key][:] = (
                np.rint(raw).astype(columns[key].dtype)[:, None] if columns[key].ndim > 1 else np.rint(raw)
            )
        else:
            _put(columns, key, grip.slice, raw)

    task = "" if empty_instruction else TASKS[int(rng.integers(len(TASKS)))]
    colour = rng.uniform(40, 160, 3)
    for key, spec in steps_spec.items():
        kind, shape = parse_spec(spec)
        if kind == "image":
            columns[key] = [_image(colour, shape[0], shape[1], position[i], i) for i in range(t)]
        elif kind == "text":
            columns[key] = [task] * t
        elif kind == "int32" and cfg.instruction and key == cfg.instruction.key:  # unicode code points, 0-padded
            codes = np.zeros((t, shape[0]), np.int32)
            codes[:, : len(task)] = [ord(c) for c in task]
            columns[key] = codes

    steps = {
        **columns,
        "is_first": np.arange(t) == 0,
        "is_last": np.arange(t) == t - 1,
        "is_terminal": np.arange(t) == t - 1,
        "reward": (np.arange(t) == t - 1).astype(np.float32),
        "discount": np.ones(t, np.float32),
    }
    example = {"steps": _nest({k: list(v) if not isinstance(v, list) else v for k, v in steps.items()})}
    meta = schema.get("metadata", {})
    if meta:
        example["episode_metadata"] = {
            k.split("/", 1)[1]: (task != "" if parse_spec(v)[0] == "bool" else f"sample/{cfg.name}")
            for k, v in meta.items()
        }
    return example


def generate_dataset(cfg, schema: dict, out_dir: Path, episodes: int) -> Path:
    import tensorflow_datasets as tfds

    rng = np.random.default_rng(seed_of(cfg.name))
    empty_at = 1 if seed_of(cfg.name) % 3 == 0 and cfg.instruction else -1  # some datasets: one unlabeled episode
    splits = {"train": episodes, "val": max(1, episodes // 3)}
    data = {}
    for split, n in splits.items():
        data[split] = [
            (
                f"{i:06d}",
                make_episode(
                    cfg, schema, rng, int(rng.integers(12, 41)), empty_instruction=(split == "train" and i == empty_at)
                ),
            )
            for i in range(n)
        ]
    name = schema.get("tfds_name", cfg.name)
    tfds.dataset_builders.store_as_tfds_dataset(
        name=name,
        version=cfg.version,
        features=features_of(schema),
        split_datasets=data,
        data_dir=str(out_dir),
        description=f"Synthetic sample of {cfg.name} in its real RLDS schema.",
        file_format="tfrecord",
        disable_shuffling=True,
    )
    return out_dir / name / cfg.version


def generate(
    out_dir: str | Path, episodes: int = DEFAULT_EPISODES, names: list[str] | None = None, verbose: bool = True
) -> Path:
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()
    registry = load_registry()
    schemas = load_yaml(SCHEMAS_FILE)["datasets"]
    out_dir = Path(out_dir)
    names = names or list(registry.datasets)
    for name in names:
        if name not in registry.datasets:
            raise SystemExit(f"error: unknown dataset '{name}'")
        path = generate_dataset(registry.datasets[name], schemas[name], out_dir, episodes)
        _strip_volatile(path)
        if verbose:
            print(f"sample: {name} -> {path}", file=sys.stderr)
    shutil.rmtree(out_dir / "downloads", ignore_errors=True)  # TFDS's empty download area
    return out_dir


def _strip_volatile(path: Path) -> None:
    """TFDS records where the data was written from; drop it so two corpora are byte-identical."""
    import json

    for f in path.glob("*.json"):
        doc = json.loads(f.read_text())
        if isinstance(doc, dict) and doc.pop("moduleName", None) is not None:
            f.write_text(json.dumps(doc, indent=2, sort_keys=True))


def ensure_corpus(out_dir: str | Path | None = None, episodes: int = DEFAULT_EPISODES) -> Path:
    """The sample corpus, generated on first use (into a temporary directory, then renamed)."""
    out = Path(out_dir) if out_dir else default_corpus_dir()
    marker = out / ".complete"
    sources = b"".join(f.read_bytes() for f in (Path(__file__), SCHEMAS_FILE, REGISTRY_DIR / "datasets.yaml"))
    stamp = f"{CORPUS_VERSION}:{episodes}:{hashlib.sha256(sources).hexdigest()}"  # regenerated when its recipe changes
    if marker.exists() and marker.read_text() == stamp:
        return out
    print(f"sample: generating the built-in sample corpus in {out} (once)", file=sys.stderr)
    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    # TFDS writes with TensorFlow: in a process of its own, so that TensorFlow never loads into the job's
    # (its bundled LLVM crashes a later import of torch's triton in the same process)
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "sources.sample", "--out", str(tmp), "--episodes", str(episodes), "--quiet"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"generating the sample corpus failed:\n{r.stderr[-3000:]}")
    (tmp / ".complete").write_text(stamp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sources.sample", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="directory to write the RLDS datasets into")
    p.add_argument("--episodes", type=int, default=DEFAULT_EPISODES, help="train episodes per dataset")
    p.add_argument("--datasets", help="comma-separated registry names (default: all)")
    p.add_argument("--quiet", action="store_true", help="no line per dataset")
    args = p.parse_args(argv)
    if args.episodes < 1:
        print("error: --episodes must be at least 1", file=sys.stderr)
        return 2
    generate(args.out, args.episodes, args.datasets.split(",") if args.datasets else None, verbose=not args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
