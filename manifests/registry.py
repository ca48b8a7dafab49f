"""The registry as data: datasets.yaml and mixtures.yaml, loaded and validated.

Every error is a `RegistryError` whose message is one line naming the file, the
dataset or mixture, the field and what is wrong.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REGISTRY_DIR = Path(__file__).resolve().parent
DATASETS_FILE = REGISTRY_DIR / "datasets.yaml"
MIXTURES_FILE = REGISTRY_DIR / "mixtures.yaml"

GRIPPER_CONVENTIONS = (
    "continuous_open",  # continuous in [0, 1], 1 = open; in-between values take the next decisive one
    "absolute_open",  # already absolute, 1 = open
    "absolute_closed",  # absolute, 1 = closed: inverted
    "signed_open",  # +1 open / -1 closed: clipped to [0, 1]
    "signed_closed",  # +1 closed / -1 open: clipped to [0, 1], inverted
    "relative",  # +1 close / -1 open commands, 0 = no change: integrated to absolute
    "always_open",  # no gripper action stored; the gripper never closes
    "always_closed",  # no gripper action stored; the gripper holds throughout
)
ROTATION_FORMATS = ("euler", "quaternion", "none")
PROPRIO_ENCODINGS = ("none", "zlib_float32")
INSTRUCTION_ENCODINGS = ("text", "unicode_codepoints")
REQUIRED_DATASET_FIELDS = ("version", "control_hz", "images", "image_size", "instruction", "proprio", "action")


class RegistryError(ValueError):
    """A registry, mixture file or mixture argument that cannot be used."""


@dataclass(frozen=True)
class Intrinsics:
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    source: str = "default"  # "default" (SpatialVLA's) or "dataset"

    def to_dict(self) -> dict:
        return {"fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy,
                "width": self.width, "height": self.height, "source": self.source}


@dataclass(frozen=True)
class DatasetConfig:
    name: str
    version: str
    rlds_dirs: tuple[str, ...]
    control_hz: float
    primary_image: str
    wrist_image: str | None
    image_size: tuple[int, int]  # (height, width) of the primary camera in the real release
    instruction: dict | None
    proprio: tuple[dict, ...]
    action: dict
    intrinsics: Intrinsics
    grid_fit_excluded: bool = False

    @property
    def gripper_convention(self) -> str:
        return self.action["gripper"]["convention"]


@dataclass(frozen=True)
class Mixture:
    name: str
    weights: dict[str, float]  # dataset -> given weight, in registry order
    source: str  # "registry", a file path, or "--datasets"
    datasets: dict[str, DatasetConfig] = field(repr=False, default_factory=dict)


@dataclass(frozen=True)
class Registry:
    datasets: dict[str, DatasetConfig]
    mixtures: dict[str, dict[str, float]]

    def dataset(self, name: str, where: str = "") -> DatasetConfig:
        if name not in self.datasets:
            raise RegistryError(f"{where}unknown dataset '{name}'{_suggest(name, self.datasets)}")
        return self.datasets[name]


# ---------------------------------------------------------------- YAML loading

class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (plain YAML keeps the last silently)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False):
    seen = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise RegistryError(f"{loader.name}: line {key_node.start_mark.line + 1}: duplicate key '{key}'")
        seen[key] = True
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: str | Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise RegistryError(f"{path}: cannot read: {e.strerror}") from None
    loader = _StrictLoader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise RegistryError(f"{path}:{where} not valid YAML: {getattr(e, 'problem', e)}") from None
    finally:
        loader.dispose()


# ---------------------------------------------------------------- validation

def _suggest(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


def _weight(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise RegistryError(f"{where}: weight must be a positive number, got {value!r}")
    try:
        w = float(value)
    except ValueError:
        raise RegistryError(f"{where}: weight must be a positive number, got {value!r}") from None
    if not math.isfinite(w) or w <= 0:
        raise RegistryError(f"{where}: weight must be a positive number, got {value!r}")
    return w


def _require(entry: dict, fields, where: str) -> None:
    for f in fields:
        if f not in entry:
            raise RegistryError(f"{where}: missing field '{f}'")


def _check_part(part: Any, where: str, allowed_extra=()) -> None:
    if not isinstance(part, dict):
        raise RegistryError(f"{where}: expected a mapping, got {part!r}")
    if "slice" in part:
        s = part["slice"]
        if not (isinstance(s, list) and len(s) == 2 and all(isinstance(i, int) for i in s) and s[0] < s[1]):
            raise RegistryError(f"{where}: slice must be [start, stop) with start < stop, got {s!r}")
    unknown = set(part) - {"key", "slice", *allowed_extra}
    if unknown:
        raise RegistryError(f"{where}: unknown field(s) {sorted(unknown)}")


def _dataset_config(name: str, entry: Any, default_intrinsics: dict, src: str) -> DatasetConfig:
    where = f"{src}: dataset '{name}'"
    if not isinstance(entry, dict):
        raise RegistryError(f"{where}: expected a mapping of fields, got {entry!r}")
    _require(entry, REQUIRED_DATASET_FIELDS, where)

    action = entry["action"]
    if not isinstance(action, dict):
        raise RegistryError(f"{where}: action: expected a mapping")
    _require(action, ("translation", "rotation", "gripper"), f"{where}: action")
    _check_part(action["translation"], f"{where}: action.translation", ("pad_to",))
    if "key" not in action["translation"]:
        raise RegistryError(f"{where}: action.translation: missing field 'key'")
    rot = action["rotation"]
    _check_part(rot, f"{where}: action.rotation", ("format",))
    if rot.get("format", "euler") not in ROTATION_FORMATS:
        raise RegistryError(f"{where}: action.rotation.format must be one of {ROTATION_FORMATS}, got {rot.get('format')!r}")
    if rot.get("format") != "none" and "key" not in rot:
        raise RegistryError(f"{where}: action.rotation: missing field 'key'")
    grip = action["gripper"]
    _check_part(grip, f"{where}: action.gripper", ("convention",))
    conv = grip.get("convention")
    if conv not in GRIPPER_CONVENTIONS:
        raise RegistryError(f"{where}: action.gripper.convention must be one of {GRIPPER_CONVENTIONS}, got {conv!r}")
    if not conv.startswith("always_") and "key" not in grip:
        raise RegistryError(f"{where}: action.gripper: missing field 'key'")
    if "relabel_from_state" in action:
        _check_part(action["relabel_from_state"], f"{where}: action.relabel_from_state")

    for i, part in enumerate(entry["proprio"] or []):
        _check_part(part, f"{where}: proprio[{i}]", ("encoding", "dims"))
        if part.get("encoding", "none") not in PROPRIO_ENCODINGS:
            raise RegistryError(f"{where}: proprio[{i}].encoding must be one of {PROPRIO_ENCODINGS}")

    instruction = entry["instruction"]
    if instruction is not None:
        _check_part(instruction, f"{where}: instruction", ("encoding",))
        if instruction.get("encoding", "text") not in INSTRUCTION_ENCODINGS:
            raise RegistryError(f"{where}: instruction.encoding must be one of {INSTRUCTION_ENCODINGS}")

    images = entry["images"]
    if not isinstance(images, dict) or not images.get("primary"):
        raise RegistryError(f"{where}: images: missing field 'primary'")
    size = entry["image_size"]
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        raise RegistryError(f"{where}: image_size must be [height, width], got {size!r}")

    intr = entry.get("intrinsics")
    intrinsics = Intrinsics(**(intr or default_intrinsics), source="dataset" if intr else "default")
    return DatasetConfig(
        name=name,
        version=str(entry["version"]),
        rlds_dirs=tuple(entry.get("rlds_dirs") or [name]),
        control_hz=float(entry["control_hz"]),
        primary_image=images["primary"],
        wrist_image=images.get("wrist"),
        image_size=(size[0], size[1]),
        instruction=instruction,
        proprio=tuple(entry["proprio"] or ()),
        action=action,
        intrinsics=intrinsics,
        grid_fit_excluded=bool(entry.get("grid_fit_excluded", False)),
    )


def _mixture_weights(name: str, entries: Any, datasets, src: str) -> dict[str, float]:
    where = f"{src}: mixture '{name}'"
    if not isinstance(entries, dict) or not entries:
        raise RegistryError(f"{where}: expected a non-empty mapping of dataset: weight")
    weights = {}
    for ds, w in entries.items():
        if ds not in datasets:
            raise RegistryError(f"{where}: unknown dataset '{ds}'{_suggest(ds, datasets)}")
        weights[ds] = _weight(w, f"{where}: dataset '{ds}'")
    return weights


def parse_datasets(doc: Any, src: str, default_intrinsics: dict | None = None) -> dict[str, DatasetConfig]:
    if not isinstance(doc, dict) or not isinstance(doc.get("datasets"), dict):
        raise RegistryError(f"{src}: missing field 'datasets' (a mapping of dataset name to fields)")
    intr = doc.get("default_intrinsics") or default_intrinsics
    if intr is None:
        raise RegistryError(f"{src}: missing field 'default_intrinsics'")
    return {name: _dataset_config(name, entry, intr, src) for name, entry in doc["datasets"].items()}


def load_registry(datasets_file: str | Path = DATASETS_FILE, mixtures_file: str | Path = MIXTURES_FILE) -> Registry:
    ds_doc = load_yaml(datasets_file)
    datasets = parse_datasets(ds_doc, str(datasets_file))
    mix_doc = load_yaml(mixtures_file)
    if not isinstance(mix_doc, dict) or not isinstance(mix_doc.get("mixtures"), dict):
        raise RegistryError(f"{mixtures_file}: missing field 'mixtures'")
    mixtures = {n: _mixture_weights(n, e, datasets, str(mixtures_file)) for n, e in mix_doc["mixtures"].items()}
    return Registry(datasets=datasets, mixtures=mixtures)


# ---------------------------------------------------------------- resolving what the user asked for

def parse_inline(spec: str, registry: Registry) -> dict[str, float]:
    """`bridge_orig=1.0,fractal20220817_data=0.5` -> weights."""
    weights: dict[str, float] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, sep, value = item.partition("=")
        name = name.strip()
        where = f"--datasets: '{item}'"
        if not sep:
            raise RegistryError(f"{where}: expected NAME=WEIGHT")
        if name in weights:
            raise RegistryError(f"--datasets: duplicate dataset '{name}'")
        registry.dataset(name, where="--datasets: ")
        weights[name] = _weight(value.strip(), f"--datasets: dataset '{name}'")
    if not weights:
        raise RegistryError("--datasets: no dataset given (expected NAME=WEIGHT[,NAME=WEIGHT...])")
    return weights


def load_mixture_file(path: str | Path, registry: Registry) -> tuple[str, dict[str, float], dict[str, DatasetConfig]]:
    """A user's mixture file: `datasets: {name: weight}`, optional `name`, and optional
    `dataset_configs` in the registry's own layout for datasets the registry lacks (a new robot)."""
    doc = load_yaml(path)
    src = str(path)
    if not isinstance(doc, dict):
        raise RegistryError(f"{src}: expected a mapping with a 'datasets' field")
    extra = {}
    if "dataset_configs" in doc:
        extra = parse_datasets({"datasets": doc["dataset_configs"], "default_intrinsics": doc.get("default_intrinsics")},
                               src, default_intrinsics=_default_intrinsics())
        clash = sorted(set(extra) & set(registry.datasets))
        if clash:
            raise RegistryError(f"{src}: dataset_configs: '{clash[0]}' is already in the registry; choose another name")
    if "datasets" not in doc:
        raise RegistryError(f"{src}: missing field 'datasets'")
    known = {**registry.datasets, **extra}
    name = str(doc.get("name") or Path(path).stem)
    return name, _mixture_weights(name, doc["datasets"], known, src), extra


def _default_intrinsics() -> dict:
    return load_yaml(DATASETS_FILE)["default_intrinsics"]


def resolve_mixture(mixture: str | None = None, datasets: str | None = None,
                    registry: Registry | None = None) -> Mixture:
    """What `--mixture NAME|FILE` or `--datasets a=w,b=w` names, validated."""
    registry = registry or load_registry()
    if (mixture is None) == (datasets is None):
        raise RegistryError("give exactly one of --mixture NAME|FILE or --datasets NAME=WEIGHT,...")
    if datasets is not None:
        weights = parse_inline(datasets, registry)
        return Mixture("custom", weights, "--datasets", {n: registry.datasets[n] for n in weights})
    if mixture.endswith((".yaml", ".yml")) or "/" in mixture:
        if not Path(mixture).is_file():
            raise RegistryError(f"--mixture: mixture file '{mixture}' does not exist")
        name, weights, extra = load_mixture_file(mixture, registry)
        known = {**registry.datasets, **extra}
        return Mixture(name, weights, mixture, {n: known[n] for n in weights})
    if mixture not in registry.mixtures:
        raise RegistryError(f"--mixture: unknown mixture '{mixture}'{_suggest(mixture, registry.mixtures)}")
    weights = registry.mixtures[mixture]
    return Mixture(mixture, dict(weights), "registry", {n: registry.datasets[n] for n in weights})
