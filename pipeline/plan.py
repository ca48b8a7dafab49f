"""One plan for a run and for --dry-run: the mixture, where its data is, which datasets are found
and how many episodes each holds, where the output goes and which stages run.

The data directory and the output are made absolute here, in the driver, so that workers in
other processes or on other machines read and write the same places.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from manifests.registry import Mixture, resolve_mixture
from pipeline.options import RunOptions, UsageError
from sources.rlds import RLDSDataset, RLDSError, find_dataset_dir
from storage import files


@dataclass
class Plan:
    options: RunOptions
    mixture: Mixture
    data_dir: str
    sample_corpus: bool
    out: str
    rows: list[dict]  # per dataset: name, version, weight, found, path, episodes, splits (the dry-run's view)
    datasets: dict[str, RLDSDataset] = field(default_factory=dict)  # the found ones, opened

    @property
    def missing(self) -> list[dict]:
        return [r for r in self.rows if not r["found"]]

    def to_json(self) -> dict:
        return {
            "mixture": self.mixture.name,
            "mixture_source": self.mixture.source,
            "data_dir": self.data_dir,
            "sample_corpus": self.sample_corpus,
            "split": self.options.split,
            "out": self.out,
            "stages": list(self.options.stages),
            "datasets": self.rows,
            "beam_options": list(self.options.beam_args),
        }


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _data_dir(options: RunOptions) -> str:
    if options.data_dir is not None:
        log(f"Reading RLDS data from {options.data_dir}")
        return files.absolute(options.data_dir)
    from sources.sample import default_corpus_dir, ensure_corpus

    log(
        f"No --data-dir given: running on the built-in sample corpus at {default_corpus_dir()} "
        f"(synthetic data, not for training)"
    )
    return str(ensure_corpus())


def _dataset_row(
    name: str, weight: float, mixture: Mixture, data_dir: str, split: str
) -> tuple[dict, RLDSDataset | None]:
    cfg = mixture.datasets[name]
    path = find_dataset_dir(data_dir, cfg.name, cfg.version, cfg.rlds_dirs)
    tried = [files.join(data_dir, d, cfg.version) for d in dict.fromkeys([*cfg.rlds_dirs, cfg.name])]
    row = {
        "name": name,
        "version": cfg.version,
        "weight": weight,
        "found": path is not None,
        "path": path or tried[0],
        "grid_fit_excluded": cfg.grid_fit_excluded,
    }
    if path is None:
        row["error"] = f"dataset '{name}' {cfg.version}: not found (looked for dataset_info.json in {', '.join(tried)})"
        return row, None
    try:
        ds = RLDSDataset(path, name)
        row["episodes"] = sum(s.num_episodes for s in ds.plan(split))
        row["splits"] = ds.splits
        ds.fields  # noqa: B018 -- features.json present and a TFDS spec: checked before any work starts
    except RLDSError as e:
        row["found"], row["error"] = False, str(e)
        return row, None
    return row, ds


def make_plan(options: RunOptions) -> Plan:
    """Raises RegistryError or UsageError with a one-line message when the plan cannot be made."""
    mixture = resolve_mixture(options.mixture, options.datasets)
    out = files.absolute(options.out or files.join("output", mixture.name))
    data_dir = _data_dir(options)
    if not files.exists(data_dir):
        raise UsageError(f"data dir '{options.data_dir}' does not exist")
    rows, datasets = [], {}
    for name, weight in mixture.weights.items():
        row, ds = _dataset_row(name, weight, mixture, data_dir, options.split)
        rows.append(row)
        if ds is not None:
            datasets[name] = ds
    return Plan(options, mixture, data_dir, options.data_dir is None, out, rows, datasets)
