"""One plan for a run and for --dry-run: the mixture, where each dataset's data is (its root:
--data-dir, a mixture file's `data_dir:`, or the built-in sample corpus), which datasets are found,
whether every key their config names is in their features.json, how many episodes each holds, where
the output goes and which stages run or are skipped (and why).

The data directories and the output are made absolute here, in the driver, so that workers in
other processes or on other machines read and write the same places.
"""

from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass, field

from manifests.registry import DatasetConfig, Mixture, resolve_mixture
from manifests.vocabulary import STAGES
from pipeline.options import RunOptions, UsageError
from sources.episodes import camera_problem
from sources.rlds import FieldInfo, RLDSDataset, RLDSError, find_dataset_dir
from sources.roots import data_root, is_synthetic
from storage import files


@dataclass
class Plan:
    options: RunOptions
    mixture: Mixture
    data_dir: str | None  # the default root (--data-dir, or the sample corpus); None: no dataset uses it
    sample_corpus: bool  # the default root is the built-in sample corpus
    out: str
    rows: list[
        dict
    ]  # per dataset: name, version, weight, root, synthetic, found, path, episodes, ... (the dry-run's view)
    datasets: dict[str, RLDSDataset] = field(default_factory=dict)  # the usable ones, opened

    @property
    def missing(self) -> list[dict]:
        """Datasets that cannot be used: not found, unreadable metadata, or keys not in features.json."""
        return [r for r in self.rows if "error" in r]

    def row(self, name: str) -> dict:
        return next(r for r in self.rows if r["name"] == name)

    def root(self, name: str) -> str:
        return self.row(name)["root"]

    def synthetic(self, name: str) -> bool:
        return self.row(name)["synthetic"]

    def stage_plan(self) -> dict[str, str]:
        """Each stage: "runs", or "skipped: why"."""
        o = self.options
        view = {}
        for stage in STAGES:
            if stage == "grids" and o.grid:
                view[stage] = f"skipped: --grid {o.grid} given"
            elif stage == "depth" and o.no_depth:
                view[stage] = "skipped: --no-depth"
            elif stage == "depth" and "export" not in o.stages:
                view[stage] = "skipped: depth runs within the export, which is not in --stages"
            elif stage not in o.stages:
                source = {"stats": "OUT/dataset_statistics.json", "grids": "OUT/grids/"}.get(stage)
                view[stage] = "skipped: not in --stages" + (f" (read from {source})" if source else "")
            else:
                view[stage] = "runs"
        return view

    def to_json(self) -> dict:
        return {
            "mixture": self.mixture.name,
            "mixture_source": self.mixture.source,
            "data_dir": self.data_dir,
            "sample_corpus": self.sample_corpus,
            "split": self.options.split,
            "out": self.out,
            "stages": list(self.options.stages),
            "stage_plan": self.stage_plan(),
            "datasets": self.rows,
            "beam_options": list(self.options.beam_args),
        }


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def default_out(mixture: Mixture) -> str:
    """./output/<mixture>; for --datasets, a name derived from the datasets and weights, so that two
    inline mixtures never share (and replace) one output."""
    if mixture.source != "--datasets":
        return files.join("output", mixture.name)
    spec = ",".join(f"{n}={w:g}" for n, w in mixture.weights.items())
    readable = "+".join(f"{n}-{w:g}" for n, w in mixture.weights.items())
    if len(readable) <= 80 and re.fullmatch(r"[A-Za-z0-9_.+-]+", readable):
        return files.join("output", f"custom-{readable}")
    return files.join("output", f"custom-{hashlib.sha256(spec.encode()).hexdigest()[:12]}")


def _default_root(options: RunOptions) -> tuple[str, bool]:
    if options.data_dir is not None:
        log(f"Reading RLDS data from {options.data_dir}")
        root = files.absolute(options.data_dir)
        if not files.exists(root):
            raise UsageError(f"data dir '{options.data_dir}' does not exist")
        return root, False
    from sources.sample import default_corpus_dir

    log(
        f"No --data-dir given: running on the built-in sample corpus at {default_corpus_dir()} "
        f"(synthetic data, not for training)"
    )
    return _root(None)


def _root(spec: str | None) -> tuple[str, bool]:
    """data_root(spec), with the sample corpus that this install cannot write (the worker install: no
    TensorFlow) as one usage line."""
    from sources.sample import SampleCorpusUnavailable

    try:
        return data_root(spec)
    except SampleCorpusUnavailable as e:
        raise UsageError(str(e)) from None


# ---------------------------------------------------------------- config keys against features.json


def _dims(f: FieldInfo) -> int | None:
    """Values per step of a tensor field (None: unknown, a dimension of variable size)."""
    n = 1
    for d in f.shape:
        if d < 0:
            return None
        n *= d
    return n


def _kind(f: FieldInfo) -> str:
    if f.kind == "image":
        return "an image"
    if f.kind == "text":
        return "text"
    return "bytes" if f.dtype == "object" else f"{f.dtype} values"


def key_problems(cfg: DatasetConfig, fields: dict[str, FieldInfo]) -> list[str]:
    """Every key a dataset's config names, checked against its features.json: present, of a kind the
    transform can read (images, numbers, text), slices within the field. One line per problem."""
    out = []

    def field_of(key: str, what: str) -> FieldInfo | None:
        if key not in fields:
            near = [f for f in fields if f.rsplit("/", 1)[-1] == key.rsplit("/", 1)[-1]][:3]
            if what == "image key":
                near = [f for f, info in fields.items() if info.kind == "image"][:4]
            hint = f" ({'its images' if what == 'image key' else 'similar'}: {', '.join(near)})" if near else ""
            out.append(f"{what} '{key}' is not in features.json{hint}")
            return None
        return fields[key]

    def numeric(part, what: str, want: int | None = None) -> None:
        if part is None or part.key is None:
            return
        f = field_of(part.key, what)
        if f is None:
            return
        if f.kind != "tensor" or f.dtype == "object":
            out.append(f"{what} '{part.key}' is {_kind(f)} in features.json, not numbers")
            return
        dims = _dims(f)
        if dims is None:
            return
        if part.slice and part.slice[1] > dims:
            out.append(
                f"{what} '{part.key}' has {dims} value(s) per step, slice {list(part.slice)} needs {part.slice[1]}"
            )
            return
        got = part.slice[1] - part.slice[0] if part.slice else dims
        pad = getattr(part, "pad_to", None)
        if want is not None and got != want and not (pad and got <= pad == want):
            out.append(f"{what} '{part.key}' gives {got} value(s) per step, the transform needs {want}")

    a = cfg.action
    numeric(a.translation, "action.translation key", 3)
    if a.rotation.format != "none":
        numeric(a.rotation, "action.rotation key", 4 if a.rotation.format == "quaternion" else 3)
    numeric(a.gripper, "action.gripper key", 1)
    numeric(a.relabel_from_state, "action.relabel_from_state key")
    for key in dict.fromkeys(
        [*(cfg.primary_choices or [cfg.primary_image]), *[cfg.wrist_image] * bool(cfg.wrist_image)]
    ):
        f = field_of(key, "image key")
        why = camera_problem(f) if f is not None else None
        if why:
            out.append(f"image key '{key}' is {why} in features.json")
    if cfg.instruction:
        f = field_of(cfg.instruction.key, "instruction key")
        text = cfg.instruction.encoding == "text"
        if f is not None and text and (f.kind == "image" or (f.kind != "text" and f.dtype != "object")):
            out.append(f"instruction key '{cfg.instruction.key}' is {_kind(f)} in features.json, not text")
    for i, p in enumerate(cfg.proprio):
        if p.encoding == "zlib_float32":
            field_of(p.key, f"proprio[{i}] key")
        else:
            numeric(p, f"proprio[{i}] key")
    return out


def _dataset_row(name: str, weight: float, mixture: Mixture, root: str, synthetic_root: bool, root_from: str,
                 split: str) -> tuple[dict, RLDSDataset | None]:  # fmt: skip
    cfg = mixture.datasets[name]
    tried = [files.join(root, d, cfg.version) for d in dict.fromkeys([*cfg.rlds_dirs, cfg.name])]
    row = {
        "name": name,
        "version": cfg.version,
        "weight": weight,
        "root": root,
        "root_from": root_from,
        "synthetic": synthetic_root,
        "found": False,
        "path": tried[0],
        "grid_fit_excluded": cfg.grid_fit_excluded,
    }
    if not files.exists(root):
        row["error"] = f"dataset '{name}': data dir '{root}' ({root_from}) does not exist"
        return row, None
    path = find_dataset_dir(root, cfg.name, cfg.version, cfg.rlds_dirs)
    row["found"], row["path"] = path is not None, path or tried[0]
    if path is None:
        row["error"] = f"dataset '{name}' {cfg.version}: not found (looked for dataset_info.json in {', '.join(tried)})"
        return row, None
    try:
        ds = RLDSDataset(path, name)
        row["synthetic"] = synthetic_root or is_synthetic(ds)
        row["episodes"] = sum(s.num_episodes for s in ds.plan(split))
        row["splits"] = ds.splits
        problems = key_problems(cfg, ds.fields)  # features.json present and a TFDS spec: checked before any work
    except RLDSError as e:
        row["error"] = str(e)
        return row, None
    if problems:
        row["key_problems"] = problems
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        where = f"{mixture.source}: " if mixture.source not in ("registry", "--datasets") else ""
        row["error"] = f"{where}dataset '{name}': {problems[0]}{more}"
        return row, None
    return row, ds


def make_plan(options: RunOptions) -> Plan:
    """Raises RegistryError or UsageError with a one-line message when the plan cannot be made."""
    mixture = resolve_mixture(options.mixture, options.datasets)
    out = files.absolute(options.out or default_out(mixture))
    if options.grid:
        from grids.grid import ActionGrid, GridFileError

        try:
            ActionGrid.load(files.absolute(options.grid))
        except (GridFileError, ValueError) as e:
            raise UsageError(f"--grid: {e}") from None
    default = None
    if any(n not in mixture.roots for n in mixture.weights):
        default = _default_root(options)
    rows, datasets = [], {}
    for name, weight in mixture.weights.items():
        if name in mixture.roots:
            (root, synthetic), root_from = _root(mixture.roots[name]), "the mixture file's data_dir"
        else:
            (root, synthetic), root_from = default, "--data-dir" if options.data_dir else "built-in sample corpus"
        row, ds = _dataset_row(name, weight, mixture, root, synthetic, root_from, options.split)
        rows.append(row)
        if ds is not None:
            datasets[name] = ds
    return Plan(
        options,
        mixture,
        default[0] if default else None,
        bool(default and default[1]),
        out,
        rows,
        datasets,
    )
