"""python -m sources.convert: a robot's own episodes (numpy .npz or HDF5 files) -> RLDS in the registry's layout.

    python -m sources.convert EPISODES... --name my_robot --out DATA --control-hz 10 [--mixture my_robot.yaml]

EPISODES are episode files, one episode per file, or directories of them (their *.npz, *.h5 and
*.hdf5 files, in name order):
  .npz         one array per key (numpy.savez); text as numpy string arrays (no pickled objects)
  .h5/.hdf5    one dataset per key; groups nest with "/" (observations/images/cam_high, as ALOHA's)
Every array whose first dimension is the episode's length T (the action's) is a step field;
a 0-d string (an episode-wide instruction) is repeated on every step. How each becomes an RLDS
feature: uint8 [T, H, W, 3] / [T, H, W] / [T, H, W, 1] -> an image (JPEG, or --image-format png for
lossless frames); encoded JPEG/PNG bytes [T] -> an image, bytes kept; strings [T] -> text; floats ->
float32 tensors (RLDS stores floats as float32); integers and booleans -> tensors as given.
is_first, is_last and is_terminal (= is_last) are added where absent; episode_metadata/file_path
names the source file. Every episode must have the same keys, types and per-step shapes.

It writes DATA/<name>/<version>/ (dataset_info.json, features.json, TFRecord shards) with TFDS's own
writer, so that `tfds.builder_from_directory` and this pipeline's reader both open it, and prints
the mixture-file entry for it (`dataset_configs`: keys, image_size as [height, width], control_hz,
intrinsics with width/height, gripper convention); --mixture FILE writes a complete mixture file.
Without --intrinsics the entry carries SpatialVLA's default camera scaled to the frames' size.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from manifests.extras import install_hint, missing
from manifests.registry import RegistryError, default_intrinsics, load_mixture_file, load_registry
from manifests.vocabulary import GRIPPER_CONVENTIONS
from transforms.frames import encode_jpeg, scale_intrinsics

EXTENSIONS = (".npz", ".h5", ".hdf5")
NAME = re.compile(r"[a-z][a-z0-9_]*")  # a TFDS dataset name (snake_case)
MIN_IMAGE_SIDE = 8
RLDS_FLAGS = ("is_first", "is_last", "is_terminal")


class ConvertError(ValueError):
    """Input that cannot be converted: one line naming the file and key."""


# ---------------------------------------------------------------- reading one episode file


class _Lazy:
    """An HDF5 dataset read one step at a time (frames of a long episode never sit in memory at once)."""

    def __init__(self, dataset):
        self.dataset, self.shape, self.dtype = dataset, dataset.shape, dataset.dtype
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, i):
        return self.dataset[i]

    def __array__(self, dtype=None, copy=None):
        a = np.asarray(self.dataset[()])  # a scalar dataset reads as a plain value (bytes for a string)
        return a if dtype is None else a.astype(dtype)


@contextlib.contextmanager
def open_episode(path: str) -> Iterator[dict]:
    """{flat key: array (or a lazy HDF5 array)} of one episode file."""
    if path.endswith(".npz"):
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {}
                for key in sorted(z.files):
                    try:
                        arrays[key] = z[key]
                    except ValueError:
                        raise ConvertError(
                            f"{path}: '{key}' holds pickled Python objects; save text as a numpy string array"
                        ) from None
        except ConvertError:
            raise
        except Exception as e:  # a broken zip, a truncated file, not an npz
            raise ConvertError(f"{path}: not a readable .npz file ({' '.join(str(e).split())[:200]})") from None
        yield arrays
        return
    import h5py

    try:
        f = h5py.File(path, "r")
    except Exception as e:
        raise ConvertError(f"{path}: not a readable HDF5 file ({' '.join(str(e).split())[:200]})") from None
    with f:
        arrays = {}
        f.visititems(lambda name, obj: arrays.__setitem__(name, _Lazy(obj)) if isinstance(obj, h5py.Dataset) else None)
        yield dict(sorted(arrays.items()))


def episode_files(inputs: list[str]) -> list[str]:
    """The episode files named (files as given, directories' episode files in name order)."""
    out = []
    for item in inputs:
        if os.path.isdir(item):
            names = sorted(n for n in os.listdir(item) if n.endswith(EXTENSIONS) and not n.startswith("."))
            if not names:
                raise ConvertError(f"{item}: no {', '.join(EXTENSIONS)} files in this directory")
            out += [os.path.join(item, n) for n in names]
        elif os.path.isfile(item):
            if not item.endswith(EXTENSIONS):
                raise ConvertError(f"{item}: not an episode file (expected {', '.join(EXTENSIONS)})")
            out.append(item)
        elif os.path.exists(item):
            raise ConvertError(f"{item}: not a regular file or directory")
        else:
            raise ConvertError(f"{item}: no such file or directory")
    if len(set(out)) != len(out):
        raise ConvertError(f"{next(p for p in out if out.count(p) > 1)}: named twice")
    return out


# ---------------------------------------------------------------- what each key becomes


@dataclass(frozen=True)
class Field:
    key: str
    kind: str  # "image", "encoded_image", "text", "tensor", "metadata"
    dtype: str  # numpy dtype as stored in RLDS
    shape: tuple[int, ...]  # per step (an image: H, W, C)
    broadcast: bool = False  # a 0-d value repeated on every step

    def describe(self) -> str:
        return f"{self.kind} {self.dtype}{list(self.shape)}"


def _as_bytes(x) -> bytes | None:
    """An encoded frame as stored: bytes, a numpy bytes scalar, a uint8 vector (HDF5 vlen uint8), np.void."""
    if isinstance(x, (bytes, np.bytes_)):
        return bytes(x)
    if isinstance(x, np.void) or (isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.ndim == 1):
        return x.tobytes()
    return None


def _is_text(a) -> bool:
    return a.dtype.kind in "US" or (a.dtype.kind == "O" and a.size and isinstance(a.flat[0], (str, bytes)))


def _image_header(data: bytes, where: str) -> tuple[int, int, int]:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(bytes(data))) as im:
            return im.height, im.width, {"L": 1, "RGB": 3}.get(im.mode, 0)
    except Exception:
        raise ConvertError(f"{where}: not an encoded JPEG/PNG image") from None


def infer_field(key: str, a, steps: int, path: str) -> Field:
    where = f"{path}: '{key}'"
    if a.ndim == 0 or (a.ndim == 1 and len(a) == 1 and steps != 1):
        value = np.asarray(a)
        if _is_text(value.reshape(-1)):
            return Field(key, "text", "object", (), broadcast=True)
        if value.dtype.kind in "biuf":
            return Field(key, "metadata", "float32" if value.dtype.kind == "f" else value.dtype.name, ())
        raise ConvertError(f"{where}: a single value of type {value.dtype} is not storable in RLDS")
    if a.shape[0] != steps:
        raise ConvertError(f"{where} has {a.shape[0]} rows, the episode has {steps} steps (the action's rows)")
    frames = a.dtype.kind == "u" and a.dtype.itemsize == 1 and a.ndim in (3, 4)
    if isinstance(a, _Lazy) and not frames:
        a = np.asarray(a)  # only frames are worth reading a step at a time
    first = _as_bytes(a[0]) if a.dtype.kind in "OSV" and a.ndim == 1 else None
    if first is not None and first[:2] in (b"\xff\xd8", b"\x89P"):
        h, w, c = _image_header(first, f"{where}[0]")
        if c != 3:
            raise ConvertError(f"{where}: encoded frames must be RGB (3 channels)")
        return Field(key, "encoded_image", "uint8", (h, w, 3))
    if _is_text(a):
        if a.ndim != 1:
            raise ConvertError(f"{where}: text must be one string per step, got shape {list(a.shape)}")
        return Field(key, "text", "object", ())
    kind = a.dtype.kind
    if frames and min(a.shape[1:3]) >= MIN_IMAGE_SIDE:
        channels = a.shape[3] if a.ndim == 4 else 1
        if channels not in (1, 3):
            raise ConvertError(f"{where}: frames with {channels} channels; store RGB [T, H, W, 3] or gray [T, H, W]")
        return Field(key, "image", "uint8", (a.shape[1], a.shape[2], channels))
    if kind == "f":
        return Field(key, "tensor", "float32", tuple(a.shape[1:]))
    if kind in "biu":
        return Field(key, "tensor", a.dtype.name, tuple(a.shape[1:]))
    raise ConvertError(f"{where}: arrays of type {a.dtype} are not storable in RLDS")


def infer_fields(arrays: dict, action_key: str, path: str) -> dict[str, Field]:
    if action_key not in arrays:
        raise ConvertError(f"{path}: no '{action_key}' array (the actions; --action names another key)")
    action = arrays[action_key]
    if action.ndim != 2 or action.dtype.kind not in "fiu":
        raise ConvertError(f"{path}: '{action_key}' must be numbers [T, D], got {action.dtype} {list(action.shape)}")
    if len(action) == 0:
        raise ConvertError(f"{path}: the episode has 0 steps")
    fields = {k: infer_field(k, a, len(action), path) for k, a in arrays.items()}
    for flag in RLDS_FLAGS:
        if flag in fields and not (
            fields[flag].kind == "tensor" and fields[flag].dtype == "bool" and not fields[flag].shape
        ):
            raise ConvertError(f"{path}: '{flag}' must be one bool per step")
    keys = sorted(fields)
    for a, b in zip(keys, keys[1:]):
        if b.startswith(a + "/"):
            raise ConvertError(f"{path}: '{a}' is both a field and a group of '{b}'")
    return fields


# ---------------------------------------------------------------- TFDS features and examples


def _nest(flat: dict) -> dict:
    tree: dict = {}
    for key, value in flat.items():
        node = tree
        *parents, leaf = key.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


def tfds_features(fields: dict[str, Field], image_format: str):
    import tensorflow_datasets as tfds

    f = tfds.features

    def leaf(fd: Field):
        if fd.kind in ("image", "encoded_image"):
            fmt = "jpeg" if fd.kind == "encoded_image" else image_format
            return f.Image(shape=fd.shape, encoding_format=fmt)
        if fd.kind == "text":
            return f.Text()
        if not fd.shape:
            return f.Scalar(dtype=np.dtype(fd.dtype))
        return f.Tensor(shape=fd.shape, dtype=np.dtype(fd.dtype))

    def build(tree):
        return f.FeaturesDict({k: build(v) if isinstance(v, dict) else leaf(v) for k, v in tree.items()})

    steps = {k: v for k, v in fields.items() if v.kind != "metadata"}
    for flag in RLDS_FLAGS:
        steps.setdefault(flag, Field(flag, "tensor", "bool", ()))
    metadata = {k: v for k, v in fields.items() if v.kind == "metadata"}
    metadata["file_path"] = Field("file_path", "text", "object", ())
    return f.FeaturesDict({"steps": f.Dataset(build(_nest(steps))), "episode_metadata": build(_nest(metadata))})


def _frames(fd: Field, a, image_format: str) -> list[bytes]:
    out = []
    for i in range(len(a)):
        if fd.kind == "encoded_image":
            data = _as_bytes(a[i])
            if data is None or _image_header(data, f"'{fd.key}'[{i}]") != fd.shape:
                raise ConvertError(f"'{fd.key}' frame {i}: not {fd.shape[1]}x{fd.shape[0]} RGB like frame 0")
            out.append(data)
            continue
        frame = np.asarray(a[i])
        if frame.ndim == 3 and frame.shape[2] == 1:
            frame = frame[:, :, 0]
        if image_format == "png":
            from PIL import Image

            buf = io.BytesIO()
            Image.fromarray(frame).save(buf, format="PNG")
            out.append(buf.getvalue())
        else:
            out.append(encode_jpeg(frame))
    return out


def _text(v) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, (bytes, np.bytes_)) else str(v)


def episode_example(arrays: dict, fields: dict[str, Field], steps: int, path: str, image_format: str) -> dict:
    flat, meta = {}, {"file_path": os.path.basename(path)}
    for key, fd in fields.items():
        a = arrays[key]
        if fd.kind == "metadata":
            meta[key] = np.asarray(a).reshape(()).astype(fd.dtype)
        elif fd.broadcast:
            flat[key] = [_text(np.asarray(a).reshape(-1)[0])] * steps
        elif fd.kind in ("image", "encoded_image"):
            flat[key] = _frames(fd, a, image_format)
        elif fd.kind == "text":
            flat[key] = [_text(v) for v in np.asarray(a)]
        else:
            flat[key] = list(np.asarray(a).astype(fd.dtype))
    last = np.arange(steps) == steps - 1
    flat.setdefault("is_first", list(np.arange(steps) == 0))
    flat.setdefault("is_last", list(last))
    flat.setdefault("is_terminal", list(last))
    return {"steps": _nest(flat), "episode_metadata": _nest(meta)}


# ---------------------------------------------------------------- the mixture-file entry


@dataclass
class Summary:
    episodes: int = 0
    steps: int = 0
    non_finite_episodes: int = 0


def _guess(fields: dict[str, Field], given: str | None, kinds: tuple[str, ...], names: tuple[str, ...], flag: str):
    if given is not None:
        if given not in fields or fields[given].kind not in kinds:
            found = fields[given].describe() if given in fields else "no such key"
            raise ConvertError(f"{flag} '{given}': not a {' or '.join(kinds)} field of the episodes ({found})")
        return given
    for name in names:
        for key in fields:
            if key.rsplit("/", 1)[-1] == name and fields[key].kind in kinds:
                return key
    return next((k for k, f in fields.items() if f.kind in kinds), None) if "image" in kinds else None


def _flow(value) -> str:
    """A value as a YAML flow (JSON is valid YAML; plain identifiers stay unquoted for reading)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_flow(k)}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_./-]*", value) and value not in (
        "null", "true", "false", "yes", "no", "on", "off", "y", "n",
    ):  # fmt: skip
        return value
    return json.dumps(value)


def dataset_entry(args, fields: dict[str, Field]) -> tuple[dict, list[str]]:
    """The registry entry for the converted dataset and the remarks printed as comments beside it."""
    remarks = []
    image = _guess(fields, args.image, ("image", "encoded_image"), ("image", "rgb", "image_0", "cam_high"), "--image")
    if image is None:
        raise ConvertError("the episodes have no camera frames (uint8 [T, H, W, 3] or encoded JPEG/PNG per step)")
    others = [
        k for k, f in fields.items() if f.kind in ("image", "encoded_image") and k not in (image, args.wrist_image)
    ]
    wrist = (
        _guess(fields, args.wrist_image, ("image", "encoded_image"), (), "--wrist-image") if args.wrist_image else None
    )
    if others and not args.image:
        remarks.append(f"primary camera: '{image}' (also: {', '.join(others)}; --image picks another)")
    instruction = _guess(
        fields, args.instruction, ("text",), ("language_instruction", "instruction", "task", "prompt"), "--instruction"
    )
    state = _guess(fields, args.state, ("tensor",), ("state", "proprio", "qpos", "joint_positions"), "--state")
    action_dims = fields[args.action].shape[0] if fields[args.action].shape else 1
    h, w = fields[image].shape[:2]
    if action_dims < 4:
        raise ConvertError(f"'{args.action}' has {action_dims} dims: the pipeline's action needs xyz and a gripper")
    if action_dims == 8:  # xyz, xyzw quaternion, gripper
        rotation = {"key": args.action, "slice": [3, 7], "format": "quaternion"}
    elif action_dims >= 7:
        rotation = {"key": args.action, "slice": [3, 6], "format": "euler"}
    else:  # xyz and a gripper, maybe more: no rotation guessed
        rotation = {"format": "none"}
    if action_dims not in (7, 8):
        remarks.append(
            f"'{args.action}' has {action_dims} dims: the entry assumes [x, y, z, (roll, pitch, yaw,) ..., gripper]; "
            "edit the slices to your layout"
        )
    if args.intrinsics:
        fx, fy, cx, cy = args.intrinsics
    else:
        d = default_intrinsics()
        fx, fy, cx, cy = scale_intrinsics(d["fx"], d["fy"], d["cx"], d["cy"], (d["width"], d["height"]), (w, h))
        remarks.append(
            f"intrinsics: SpatialVLA's default camera scaled to {w}x{h}; give --intrinsics FX,FY,CX,CY for yours"
        )
    entry = {
        "version": args.version,
        "control_hz": args.control_hz,
        "images": {"primary": image, "wrist": wrist},
        "image_size": [h, w],
        "instruction": {"key": instruction} if instruction else None,
        "proprio": [{"key": state}] if state else [],
        "action": {
            "translation": {"key": args.action, "slice": [0, 3]},
            "rotation": rotation,
            "gripper": {"key": args.action, "slice": [action_dims - 1, action_dims], "convention": args.gripper},
        },
        "intrinsics": {
            "fx": round(fx, 4),
            "fy": round(fy, 4),
            "cx": round(cx, 4),
            "cy": round(cy, 4),
            "width": w,
            "height": h,
        },
    }
    if not instruction:
        remarks.append(
            "no instruction: give --instruction KEY or --instruction-text TEXT (trainers skip unlabeled episodes)"
        )
    return entry, remarks


def mixture_text(name: str, entry: dict, remarks: list[str], out: str, summary: Summary, mixture: str | None) -> str:
    """The mixture file: the dataset read from its own root (`data_dir`, relative to the mixture file's folder
    when the file is written, else absolute), so that `pipeline.run --mixture FILE` needs no --data-dir."""
    root = os.path.relpath(out, os.path.dirname(os.path.abspath(mixture))) if mixture else os.path.abspath(out)
    a = entry["action"]
    lines = [
        f"# python -m sources.convert: {summary.episodes} episode(s), {summary.steps} steps -> "
        f"{os.path.join(out, name, entry['version'])}",
        *(f"# note: {r}" for r in remarks),
        f"name: {name}",
        f"datasets: {{{name}: {{weight: 1.0, data_dir: {_flow(root)}}}}}"
        + ("  # data_dir: relative to this file's folder" if mixture else ""),
        "dataset_configs:",
        f"  {name}:",
        f"    version: {_flow(entry['version'])}",
        f"    control_hz: {_flow(entry['control_hz'])}",
        f"    images: {_flow(entry['images'])}",
        f"    image_size: {_flow(entry['image_size'])}  # [height, width] of the primary camera's frames",
        f"    instruction: {_flow(entry['instruction'])}",
        f"    proprio: {_flow(entry['proprio'])}",
        "    action:",
        f"      translation: {_flow(a['translation'])}",
        f"      rotation: {_flow(a['rotation'])}",
        f"      gripper: {_flow(a['gripper'])}  # {GRIPPER_CONVENTIONS[a['gripper']['convention']]}",
        f"    intrinsics: {_flow(entry['intrinsics'])}  # pixels, at width x height",
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the conversion


def convert(args) -> tuple[str, str]:
    """Write the dataset; returns (its directory, the mixture file's text)."""
    from sources.sample import quiet_tfds, write_rlds

    quiet_tfds()  # TFDS writes with TensorFlow: its start-up chatter is noise here
    import tensorflow_datasets as tfds

    paths = episode_files(args.episodes)
    with open_episode(paths[0]) as arrays:
        if args.instruction_text is not None:
            arrays = {**arrays, "language_instruction": np.array(args.instruction_text)}
        fields = infer_fields(arrays, args.action, paths[0])
    entry, remarks = dataset_entry(args, fields)
    summary = Summary()

    def example(path: str) -> tuple[int, bool, dict]:
        with open_episode(path) as arrays:
            if args.instruction_text is not None:
                arrays = {**arrays, "language_instruction": np.array(args.instruction_text)}
            these = infer_fields(arrays, args.action, path)
            if these != fields:
                diff = sorted(k for k, _ in set(these.items()) ^ set(fields.items()))[0]
                got = these[diff].describe() if diff in these else "absent"
                want = fields[diff].describe() if diff in fields else "absent"
                raise ConvertError(f"{path}: '{diff}' is {got}, the first episode ({paths[0]}) has {want}")
            steps = len(arrays[args.action])
            finite = np.isfinite(np.asarray(arrays[args.action], np.float64)).all()
            return steps, finite, episode_example(arrays, fields, steps, path, args.image_format)

    def examples():
        for i, path in enumerate(paths):
            try:
                steps, finite, ex = example(path)
            except ConvertError:
                raise
            except Exception as e:  # h5py's, numpy's and PIL's ways of saying a file is damaged: one line
                raise ConvertError(f"{path}: cannot be read ({' '.join(str(e).split())[:200]})") from None
            summary.non_finite_episodes += int(not finite)
            summary.episodes += 1
            summary.steps += steps
            yield f"{i:06d}", ex

    final = os.path.join(args.out, args.name, args.version)
    if os.path.exists(final) and not args.overwrite:
        raise ConvertError(f"{final} exists: give --overwrite to replace it")
    tmp = os.path.join(args.out, f".convert-{args.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tfds.disable_progress_bar()
    try:
        written = write_rlds(
            args.name,
            args.version,
            tmp,
            tfds_features(fields, args.image_format),
            {args.split: examples()},
            f"{args.name}: episodes converted by python -m sources.convert",
        )
        if os.path.exists(final):
            shutil.rmtree(final)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        os.replace(written, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if summary.non_finite_episodes:
        remarks.append(
            f"{summary.non_finite_episodes} episode(s) have NaN or infinite actions: the pipeline drops them"
        )
    text = mixture_text(args.name, entry, remarks, args.out, summary, args.mixture)
    return final, text


# ---------------------------------------------------------------- command line


def _intrinsics(text: str) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or not all(np.isfinite(values)) or values[0] <= 0 or values[1] <= 0:
        raise argparse.ArgumentTypeError(f"expected FX,FY,CX,CY in pixels (fx, fy > 0), got {text!r}")
    return values


def _control_hz(text: str) -> float:
    try:
        hz = float(text)
    except ValueError:
        hz = float("nan")
    if not (np.isfinite(hz) and hz > 0):
        raise argparse.ArgumentTypeError(f"expected a positive rate in Hz, got {text!r}")
    return int(hz) if hz == int(hz) else hz


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sources.convert",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  python -m sources.convert my_episodes --name my_robot --out my_data --control-hz 10\n"
        "  python -m sources.convert my_episodes --name my_robot --out my_data --control-hz 10 --mixture my_robot.yaml "
        "--overwrite\n"
        "(my_episodes: a directory of .npz/.h5 files, one episode each; then: python -m pipeline.run --mixture "
        "my_robot.yaml)\n",
    )
    p.add_argument("episodes", nargs="+", help="episode files (.npz, .h5, .hdf5) or directories of them")
    p.add_argument("--name", required=True, help="the dataset's name (snake_case): DATA/<name>/<version>/")
    p.add_argument("--out", required=True, help="the RLDS data root to write into (a local directory)")
    p.add_argument("--version", default="1.0.0", help="the dataset version (a directory level)")
    p.add_argument("--control-hz", type=_control_hz, required=True, help="the robot's control rate, Hz")
    p.add_argument("--split", default="train", help="the split the episodes go to")
    p.add_argument("--action", default="action", help="the key of the actions [T, D]")
    p.add_argument("--image", help="the primary camera's key (default: a key named image, or the first image)")
    p.add_argument("--wrist-image", help="a wrist camera's key")
    p.add_argument("--state", help="the proprio key (default: a key named state, proprio or qpos)")
    inst = p.add_mutually_exclusive_group()
    inst.add_argument("--instruction", help="the instruction key (default: language_instruction, instruction, task)")
    inst.add_argument("--instruction-text", help="one instruction for every episode (written as language_instruction)")
    p.add_argument(
        "--gripper",
        choices=tuple(GRIPPER_CONVENTIONS),
        default="absolute_open",
        help="how the action's last dimension stores the gripper (absolute_open: 1 = open, 0 = closed)",
    )
    p.add_argument("--intrinsics", type=_intrinsics, help="FX,FY,CX,CY of the primary camera at the frames' size")
    p.add_argument("--image-format", choices=("jpeg", "png"), default="jpeg", help="how frames are stored")
    p.add_argument("--mixture", help="also write a complete mixture file here (YAML)")
    p.add_argument("--overwrite", action="store_true", help="replace DATA/<name>/<version> if it exists")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not NAME.fullmatch(args.name):
        print(f"error: --name {args.name!r}: a dataset name is snake_case (a-z, 0-9, _), starting with a letter",
              file=sys.stderr)  # fmt: skip
        return 2
    if not re.fullmatch(r"\d+\.\d+\.\d+", args.version):
        print(f"error: --version {args.version!r}: expected MAJOR.MINOR.PATCH, e.g. 1.0.0", file=sys.stderr)
        return 2
    if "://" in args.out or (os.path.exists(args.out) and not os.path.isdir(args.out)):
        print(f"error: --out '{args.out}': must be a local directory", file=sys.stderr)
        return 2
    if args.mixture and os.path.isdir(args.mixture):
        print(
            f"error: --mixture '{args.mixture}' is a directory; give a file name such as my_robot.yaml", file=sys.stderr
        )
        return 2
    absent = missing("convert")
    if absent:
        print(f"error: {' and '.join(absent)} not installed (the worker install writes no RLDS); "
              f"{install_hint('convert')}", file=sys.stderr)  # fmt: skip
        return 2
    try:
        registry = load_registry()
        if args.name in registry.datasets:
            raise ConvertError(f"--name '{args.name}' is a registry dataset; choose another name")
        path, text = convert(args)
    except (ConvertError, RegistryError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.mixture:
        with open(args.mixture, "w") as f:
            f.write(text)
        try:  # what was written must load as a mixture file, exactly as pipeline.run will load it
            load_mixture_file(args.mixture, registry)
        except RegistryError as e:
            print(f"error: the mixture file written does not load ({e}); please report this", file=sys.stderr)
            return 1
    print(text, end="")
    print(f"wrote {path}" + (f" and {args.mixture}" if args.mixture else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
