"""The registry as data: datasets.yaml and mixtures.yaml, loaded and validated.

Every error is a `RegistryError` whose message is one line naming the file, the
dataset or mixture, the field and what is wrong.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from manifests.vocabulary import (
    ACTION_ENCODINGS,
    GRIPPER_CONVENTIONS,
    INSTRUCTION_ENCODINGS,
    PROPRIO_ENCODINGS,
    ROTATION_FORMATS,
    SAMPLE_FILTERS,
)

REGISTRY_DIR = Path(__file__).resolve().parent
DATASETS_FILE = REGISTRY_DIR / "datasets.yaml"
MIXTURES_FILE = REGISTRY_DIR / "mixtures.yaml"

BUILTIN_SAMPLE = "builtin:sample"  # a mixture file's data_dir for the built-in sample corpus
MIXTURE_ENTRY_FIELDS = ("weight", "data_dir")
REQUIRED_DATASET_FIELDS = ("version", "control_hz", "images", "image_size", "instruction", "proprio", "action")
OPTIONAL_DATASET_FIELDS = ("rlds_dirs", "intrinsics", "grid_fit_excluded", "sample_filter")
INTRINSICS_FIELDS = ("fx", "fy", "cx", "cy", "width", "height")


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
        return {
            "fx": self.fx,
            "fy": self.fy,
            "cx": self.cx,
            "cy": self.cy,
            "width": self.width,
            "height": self.height,
            "source": self.source,
        }


@dataclass(frozen=True)
class Part:
    """A step field, optionally a [start, stop) slice of its last dimension."""

    key: str | None = None
    slice: tuple[int, int] | None = None


@dataclass(frozen=True)
class TranslationPart(Part):
    pad_to: int | None = None  # zero-padded to this many dimensions (planar robots)


@dataclass(frozen=True)
class RotationPart(Part):
    format: str = "euler"  # vocabulary.ROTATION_FORMATS


@dataclass(frozen=True)
class GripperPart(Part):
    convention: str = ""  # vocabulary.GRIPPER_CONVENTIONS


@dataclass(frozen=True)
class ProprioPart(Part):
    encoding: str = "none"  # vocabulary.PROPRIO_ENCODINGS
    dims: int | None = None  # per step, for an encoded field


@dataclass(frozen=True)
class InstructionSpec:
    key: str
    encoding: str = "text"  # vocabulary.INSTRUCTION_ENCODINGS


@dataclass(frozen=True)
class ActionSpec:
    """How the 7-D action is composed from a dataset's step fields."""

    translation: TranslationPart
    rotation: RotationPart
    gripper: GripperPart
    drop_first_steps: int = 0  # steps removed before anything else
    relabel_from_state: Part | None = None  # movement relabeled from reached states (Bridge)
    encoding: str = "eef_delta"  # vocabulary.ACTION_ENCODINGS: which dimensions are absolute

    @property
    def absolute_mask(self) -> list[bool]:
        return list(ACTION_ENCODINGS[self.encoding]["absolute_mask"])


@dataclass(frozen=True)
class DatasetConfig:
    name: str
    version: str
    rlds_dirs: tuple[str, ...]
    control_hz: float
    primary_image: str
    wrist_image: str | None
    image_size: tuple[int, int]  # (height, width) of the primary camera in the real release
    instruction: InstructionSpec | None
    proprio: tuple[ProprioPart, ...]
    action: ActionSpec
    intrinsics: Intrinsics
    grid_fit_excluded: bool = False
    primary_choices: tuple[str, ...] = ()  # several: one per episode, drawn from the run's seed (DROID)
    sample_filter: str | None = None  # vocabulary.SAMPLE_FILTERS

    @property
    def gripper_convention(self) -> str:
        return self.action.gripper.convention

    def transform_spec(self) -> dict:
        """What decides the standardized values (a cache key's part): action and proprio parts."""
        return {"action": asdict(self.action), "proprio": [asdict(p) for p in self.proprio]}


@dataclass(frozen=True)
class Mixture:
    name: str
    weights: dict[str, float]  # dataset -> given weight, in registry order
    source: str  # "registry", a file path, or "--datasets"
    datasets: dict[str, DatasetConfig] = field(repr=False, default_factory=dict)
    # dataset -> its own data root (a mixture file's `data_dir:`: a local path made absolute, a URL or
    # BUILTIN_SAMPLE); the datasets not named here are read from --data-dir
    roots: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Registry:
    datasets: dict[str, DatasetConfig]
    mixtures: dict[str, dict[str, float]]

    def dataset(self, name: str, where: str = "") -> DatasetConfig:
        if name not in self.datasets:
            raise RegistryError(f"{where}unknown dataset '{name}'{_suggest(name, self.datasets)}")
        return self.datasets[name]


# ---------------------------------------------------------------- YAML loading


MAX_YAML_BYTES = 16 << 20  # a registry or mixture file is kilobytes; a larger one is a wrong path
MAX_YAML_NODES = 1_000_000  # nodes after expanding aliases: a few anchors are fine, a "billion laughs" is not


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader (no python/* tags: they are refused) that also refuses duplicate and unhashable keys
    (plain YAML keeps the last duplicate silently) and documents whose aliases expand past
    MAX_YAML_NODES (a few hundred bytes can otherwise expand to billions of nodes when traversed)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False):
    seen = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        try:
            duplicate = key in seen
        except TypeError:
            raise RegistryError(
                f"{loader.name}: line {line}: a key must be a plain value, not a {key_node.id}"
            ) from None
        if duplicate:
            raise RegistryError(f"{loader.name}: line {line}: duplicate key '{key}'")
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _expanded_nodes(root: yaml.Node, name: str) -> int:
    """How many nodes the document has with every alias expanded (shared nodes counted once per use),
    stopping as soon as the count passes MAX_YAML_NODES."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # expanded, children not yet summed: the current path from the root
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:  # iterative post-order: a deeply nested document must not exhaust Python's stack
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        kids = []
        if isinstance(node, yaml.SequenceNode):
            kids = node.value
        elif isinstance(node, yaml.MappingNode):
            kids = [n for pair in node.value for n in pair]
        if not children_done:
            if id(node) in open_nodes:
                raise RegistryError(f"{name}: line {node.start_mark.line + 1}: an alias refers to itself: refused")
            open_nodes.add(id(node))
            stack.append((node, True))
            stack.extend((k, False) for k in kids if id(k) not in sizes)
            continue
        n = 1 + sum(sizes[id(k)] for k in kids)
        if n > MAX_YAML_NODES:
            raise RegistryError(
                f"{name}: more than {MAX_YAML_NODES} values once its aliases (*name) are expanded: refused"
            )
        sizes[id(node)] = n
        open_nodes.discard(id(node))
    return sizes.get(id(root), 0)


def load_yaml(path: str | Path) -> Any:
    """A YAML document, safely: only plain data (no python/* tags), strict UTF-8, no duplicate keys, a
    bounded size after aliases are expanded, and a regular file (a FIFO or device would block or never
    end). Every problem is a one-line RegistryError naming the file (and the line where YAML knows it)."""
    from storage import files

    path = str(path)
    try:
        text = files.read_text(path, max_bytes=MAX_YAML_BYTES, what="YAML file")
    except OSError as e:  # files.StorageError included: a directory, a FIFO, not UTF-8, too large
        message = str(e) if str(e).startswith(path) else f"{path}: cannot read: {e.strerror or e}"
        raise RegistryError(message) from None
    loader = _StrictLoader(text)
    loader.name = path
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_nodes(node, path)
        return loader.construct_document(node)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = " ".join(str(getattr(e, "problem", None) or e).split())
        raise RegistryError(f"{path}:{where} not valid YAML: {problem}") from None
    except RecursionError:
        raise RegistryError(f"{path}: nested too deeply to be a registry or mixture file") from None
    except (ValueError, OverflowError) as e:  # e.g. an integer of more digits than Python converts
        if isinstance(e, RegistryError):
            raise
        raise RegistryError(f"{path}: a value YAML cannot convert ({' '.join(str(e).split())[:200]})") from None
    finally:
        loader.dispose()


# ---------------------------------------------------------------- validation


def _suggest(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


def _weight(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise RegistryError(f"{where}: weight must be a positive number, got {_shown(value)}")
    try:
        w = float(value)
    except (ValueError, OverflowError):  # OverflowError: an integer beyond any float
        raise RegistryError(f"{where}: weight must be a positive number, got {_shown(value)}") from None
    if not math.isfinite(w) or w <= 0:
        raise RegistryError(f"{where}: weight must be a positive number, got {_shown(value)}")
    return w


def _require(entry: dict, names, where: str) -> None:
    for f in names:
        if f not in entry:
            raise RegistryError(f"{where}: missing field '{f}'")


def _one_of(value, vocabulary: dict, where: str):
    if value not in vocabulary:
        raise RegistryError(f"{where} must be one of {tuple(vocabulary)}, got {_shown(value)}")
    return value


def _shown(value: Any) -> str:
    """repr of a value for a one-line message, cut short (a 5000-digit integer has no repr at all)."""
    try:
        text = repr(value)
    except ValueError:
        return "an integer of more digits than Python prints"
    return text if len(text) <= 60 else text[:57] + "..."


MAX_PIXELS_PER_SIDE = 65535  # JPEG's and PNG's limit; beyond it an image size is a typo


def _number(value: Any, where: str, integer: bool = False, positive: bool = True, most: float | None = None):
    ok = isinstance(value, int if integer else (int, float)) and not isinstance(value, bool)
    try:
        ok = ok and math.isfinite(value) and not (positive and value <= 0) and not (most and value > most)
    except OverflowError:  # an integer too large for a float
        ok = False
    if not ok:
        kind = "a positive whole number" if integer else "a positive number"
        bound = f" up to {most}" if most else ""
        raise RegistryError(f"{where} must be {kind}{bound}, got {_shown(value)}")
    return value


def _part(cls, raw: Any, where: str):
    """A typed part from its YAML mapping: known fields only, slices checked."""
    if not isinstance(raw, dict):
        raise RegistryError(f"{where}: expected a mapping, got {_shown(raw)}")
    known = {f.name for f in fields(cls)}
    unknown = set(raw) - known
    if unknown:
        raise RegistryError(
            f"{where}: unknown field(s) {sorted(map(str, unknown))} (known: {', '.join(sorted(known))})"
        )
    _require(raw, [f.name for f in fields(cls) if f.default is MISSING], where)
    values = dict(raw)
    if "key" in values and not (isinstance(values["key"], str) and values["key"]):
        raise RegistryError(f"{where}.key must be a step key, got {_shown(values['key'])}")
    if "slice" in values:
        s = values["slice"]
        if not (isinstance(s, list) and len(s) == 2 and all(isinstance(i, int) and i >= 0 for i in s) and s[0] < s[1]):
            raise RegistryError(f"{where}: slice must be [start, stop) with 0 <= start < stop, got {_shown(s)}")
        values["slice"] = (s[0], s[1])
    for name in ("pad_to", "dims"):
        if values.get(name) is not None:
            _number(values[name], f"{where}.{name}", integer=True)
    return cls(**values)


def _action(raw: Any, where: str) -> ActionSpec:
    if not isinstance(raw, dict):
        raise RegistryError(f"{where}: expected a mapping")
    _require(raw, ("translation", "rotation", "gripper"), where)
    unknown = set(raw) - {f.name for f in fields(ActionSpec)}
    if unknown:
        raise RegistryError(f"{where}: unknown field(s) {sorted(map(str, unknown))}")
    translation = _part(TranslationPart, raw["translation"], f"{where}.translation")
    if translation.key is None:
        raise RegistryError(f"{where}.translation: missing field 'key'")
    rotation = _part(RotationPart, raw["rotation"], f"{where}.rotation")
    _one_of(rotation.format, ROTATION_FORMATS, f"{where}.rotation.format")
    if rotation.format != "none" and rotation.key is None:
        raise RegistryError(f"{where}.rotation: missing field 'key'")
    gripper = _part(GripperPart, raw["gripper"], f"{where}.gripper")
    _one_of(gripper.convention or None, GRIPPER_CONVENTIONS, f"{where}.gripper.convention")
    if not gripper.convention.startswith("always_") and gripper.key is None:
        raise RegistryError(f"{where}.gripper: missing field 'key'")
    relabel = raw.get("relabel_from_state")
    drop = raw.get("drop_first_steps", 0)
    if drop:
        _number(drop, f"{where}.drop_first_steps", integer=True)
    encoding = _one_of(raw.get("encoding", "eef_delta"), ACTION_ENCODINGS, f"{where}.encoding")
    relabel = _part(Part, relabel, f"{where}.relabel_from_state") if relabel is not None else None
    return ActionSpec(translation, rotation, gripper, drop, relabel, encoding)


def _intrinsics(raw: Any, default: dict, where: str) -> Intrinsics:
    if raw is None:
        return Intrinsics(**default, source="default")
    if not isinstance(raw, dict):
        raise RegistryError(f"{where}: expected a mapping of {', '.join(INTRINSICS_FIELDS)}")
    unknown = set(raw) - set(INTRINSICS_FIELDS)
    if unknown:
        raise RegistryError(
            f"{where}: unknown field(s) {sorted(map(str, unknown))} (known: {', '.join(INTRINSICS_FIELDS)})"
        )
    _require(raw, INTRINSICS_FIELDS, where)
    for k in INTRINSICS_FIELDS:
        side = k in ("width", "height")
        _number(
            raw[k],
            f"{where}.{k}",
            integer=side,
            positive=k not in ("cx", "cy"),
            most=MAX_PIXELS_PER_SIDE if side else None,
        )
    return Intrinsics(**raw, source="dataset")


def _dataset_config(name: str, entry: Any, default_intrinsics: dict, src: str) -> DatasetConfig:
    where = f"{src}: dataset '{name}'"
    if not isinstance(entry, dict):
        raise RegistryError(f"{where}: expected a mapping of fields, got {_shown(entry)}")
    _require(entry, REQUIRED_DATASET_FIELDS, where)
    unknown = set(entry) - set(REQUIRED_DATASET_FIELDS) - set(OPTIONAL_DATASET_FIELDS)
    if unknown:
        raise RegistryError(
            f"{where}: unknown field(s) {sorted(map(str, unknown))}{_suggest(sorted(map(str, unknown))[0], [*REQUIRED_DATASET_FIELDS, *OPTIONAL_DATASET_FIELDS])}"
        )

    action = _action(entry["action"], f"{where}: action")
    proprio = entry["proprio"] or []
    if not isinstance(proprio, list):
        raise RegistryError(f"{where}: proprio must be a list of parts, got {_shown(proprio)}")
    proprio = tuple(_part(ProprioPart, p, f"{where}: proprio[{i}]") for i, p in enumerate(proprio))
    for i, p in enumerate(proprio):
        _one_of(p.encoding, PROPRIO_ENCODINGS, f"{where}: proprio[{i}].encoding")
        if p.key is None:
            raise RegistryError(f"{where}: proprio[{i}]: missing field 'key'")
    instruction = entry["instruction"]
    if instruction is not None:
        instruction = _part(InstructionSpec, instruction, f"{where}: instruction")
        _one_of(instruction.encoding, INSTRUCTION_ENCODINGS, f"{where}: instruction.encoding")

    images = entry["images"]
    if not isinstance(images, dict) or not images.get("primary"):
        raise RegistryError(f"{where}: images: missing field 'primary'")
    primary = images["primary"]
    choices = tuple(primary) if isinstance(primary, list) else ()
    if not all(isinstance(k, str) and k for k in choices or [primary]):
        raise RegistryError(f"{where}: images.primary must be a step key or a list of them, got {_shown(primary)}")
    sample_filter = entry.get("sample_filter")
    if sample_filter is not None:
        _one_of(sample_filter, SAMPLE_FILTERS, f"{where}: sample_filter")
    if set(images) - {"primary", "wrist"}:
        raise RegistryError(f"{where}: images: unknown field(s) {sorted(map(str, set(images) - {'primary', 'wrist'}))}")
    size = entry["image_size"]
    if not (
        isinstance(size, list)
        and len(size) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_PIXELS_PER_SIDE for v in size)
    ):
        raise RegistryError(
            f"{where}: image_size must be [height, width] in pixels (1..{MAX_PIXELS_PER_SIDE}), got {_shown(size)}"
        )
    return DatasetConfig(
        name=name,
        version=str(entry["version"]),
        rlds_dirs=tuple(entry.get("rlds_dirs") or [name]),
        control_hz=float(_number(entry["control_hz"], f"{where}: control_hz")),
        primary_image=choices[0] if choices else primary,
        wrist_image=images.get("wrist"),
        image_size=(size[0], size[1]),
        instruction=instruction,
        proprio=proprio,
        action=action,
        intrinsics=_intrinsics(entry.get("intrinsics"), default_intrinsics, f"{where}: intrinsics"),
        grid_fit_excluded=bool(entry.get("grid_fit_excluded", False)),
        primary_choices=choices if len(choices) > 1 else (),
        sample_filter=sample_filter,
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


NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_name(name: Any, what: str, where: str) -> str:
    """A dataset or mixture name: it becomes a file or directory name under --out."""
    if not isinstance(name, str) or not NAME.fullmatch(name) or ".." in name:
        raise RegistryError(
            f"{where}: {what} name {_shown(name)} must be letters, digits, '_', '-' and '.', not starting with "
            "a punctuation mark (it names files under --out)"
        )
    return name


def parse_datasets(doc: Any, src: str, default_intrinsics: dict | None = None) -> dict[str, DatasetConfig]:
    if not isinstance(doc, dict) or not isinstance(doc.get("datasets"), dict):
        raise RegistryError(f"{src}: missing field 'datasets' (a mapping of dataset name to fields)")
    intr = doc.get("default_intrinsics") or default_intrinsics
    if intr is None:
        raise RegistryError(f"{src}: missing field 'default_intrinsics'")
    return {
        check_name(name, "dataset", src): _dataset_config(name, entry, intr, src)
        for name, entry in doc["datasets"].items()
    }


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


def _mixture_entries(name: str, entries: Any, known, src: str, base: Path) -> tuple[dict[str, float], dict[str, str]]:
    """A mixture file's `datasets:` mapping: `name: WEIGHT` or `name: {weight: W, data_dir: ROOT}`
    -> (weights, roots). A relative data_dir is relative to the mixture file's folder."""
    where = f"{src}: mixture '{name}'"
    if not isinstance(entries, dict) or not entries:
        raise RegistryError(f"{where}: expected a non-empty mapping of dataset: weight")
    plain, roots = {}, {}
    for ds, entry in entries.items():
        if isinstance(entry, dict):
            at = f"{where}: dataset '{ds}'"
            unknown = set(entry) - set(MIXTURE_ENTRY_FIELDS)
            if unknown:
                raise RegistryError(
                    f"{at}: unknown field(s) {sorted(unknown)} (known: {', '.join(MIXTURE_ENTRY_FIELDS)})"
                )
            if "weight" not in entry:
                raise RegistryError(f"{at}: missing field 'weight'")
            root = entry.get("data_dir")
            if root is not None:
                if not isinstance(root, str) or not root.strip():
                    raise RegistryError(f"{at}: data_dir must be a path, a URL or '{BUILTIN_SAMPLE}', got {root!r}")
                roots[ds] = _root(root.strip(), base)
            entry = entry["weight"]
        plain[ds] = entry
    return _mixture_weights(name, plain, known, src), roots


def _root(spec: str, base: Path) -> str:
    if spec == BUILTIN_SAMPLE or "://" in spec:
        return spec
    if spec.startswith("builtin:"):
        raise RegistryError(f"unknown built-in data dir '{spec}' (the one there is: '{BUILTIN_SAMPLE}')")
    path = Path(spec).expanduser()
    return str(path if path.is_absolute() else base / path)


def load_mixture_file(
    path: str | Path, registry: Registry
) -> tuple[str, dict[str, float], dict[str, DatasetConfig], dict[str, str]]:
    """A user's mixture file: `datasets: {name: weight | {weight, data_dir}}`, optional `name`, and
    optional `dataset_configs` in the registry's own layout for datasets the registry lacks (a new
    robot). Returns (name, weights, extra configs, roots of the datasets that name their own)."""
    doc = load_yaml(path)
    src = str(path)
    if not isinstance(doc, dict):
        raise RegistryError(f"{src}: expected a mapping with a 'datasets' field")
    unknown = set(doc) - {"name", "datasets", "dataset_configs", "default_intrinsics"}
    if unknown:
        raise RegistryError(
            f"{src}: unknown field(s) {sorted(map(str, unknown))} (known: name, datasets, dataset_configs, default_intrinsics)"
        )
    extra = {}
    if "dataset_configs" in doc:
        if not isinstance(doc["dataset_configs"], dict):
            raise RegistryError(f"{src}: dataset_configs must be a mapping of dataset name to its fields")
        extra = parse_datasets(
            {"datasets": doc["dataset_configs"], "default_intrinsics": doc.get("default_intrinsics")},
            src,
            default_intrinsics=default_intrinsics(),
        )
        clash = sorted(set(extra) & set(registry.datasets))
        if clash:
            raise RegistryError(f"{src}: dataset_configs: '{clash[0]}' is already in the registry; choose another name")
    if "datasets" not in doc:
        raise RegistryError(f"{src}: missing field 'datasets'")
    known = {**registry.datasets, **extra}
    name = check_name(str(doc.get("name") or Path(path).stem), "mixture", src)
    try:
        weights, roots = _mixture_entries(name, doc["datasets"], known, src, Path(path).resolve().parent)
    except RegistryError as e:
        raise RegistryError(str(e) if str(e).startswith(src) else f"{src}: {e}") from None
    return name, weights, extra, roots


def default_intrinsics() -> dict:
    """The registry's default camera (SpatialVLA's), with the width and height it is given at."""
    return load_yaml(DATASETS_FILE)["default_intrinsics"]


def resolve_mixture(
    mixture: str | None = None, datasets: str | None = None, registry: Registry | None = None
) -> Mixture:
    """What `--mixture NAME|FILE` or `--datasets a=w,b=w` names, validated."""
    registry = registry or load_registry()
    if (mixture is None) == (datasets is None):
        raise RegistryError("give exactly one of --mixture NAME|FILE or --datasets NAME=WEIGHT,...")
    if datasets is not None:
        weights = parse_inline(datasets, registry)
        return Mixture("custom", weights, "--datasets", {n: registry.datasets[n] for n in weights})
    if mixture.endswith((".yaml", ".yml")) or "/" in mixture:
        if Path(mixture).is_dir():
            raise RegistryError(f"--mixture: '{mixture}' is a directory; give a mixture file (.yaml) or a mixture name")
        if not Path(mixture).exists():
            raise RegistryError(f"--mixture: mixture file '{mixture}' does not exist")
        name, weights, extra, roots = load_mixture_file(mixture, registry)
        known = {**registry.datasets, **extra}
        return Mixture(name, weights, mixture, {n: known[n] for n in weights}, roots)
    if mixture not in registry.mixtures:
        if Path(mixture).is_dir():
            raise RegistryError(f"--mixture: '{mixture}' is a directory; give a mixture file (.yaml) or a mixture name")
        raise RegistryError(f"--mixture: unknown mixture '{mixture}'{_suggest(mixture, registry.mixtures)}")
    weights = registry.mixtures[mixture]
    return Mixture(mixture, dict(weights), "registry", {n: registry.datasets[n] for n in weights})
