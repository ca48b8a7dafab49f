"""What every stage of a run shares: the options, the plan, the report, and where outputs go.

Stages import this and the rooms below pipeline/, never each other or the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from manifests.registry import DatasetConfig, Mixture
from pipeline.options import RunOptions
from pipeline.plan import Plan, log
from pipeline.report import Report
from shards.manifest import STATISTICS_FILE, grid_relpath
from sources.rlds import RLDSDataset, fingerprint
from storage import files

__all__ = ["DataLossError", "RunContext", "RunError", "StrictError", "log"]


class RunError(Exception):
    """Input the run cannot proceed with: one line, exit code 2, nothing partial written."""


class StrictError(Exception):
    """--strict and the input has problems: one line, exit code 1, report.json says what they are."""


class DataLossError(StrictError):
    """A dataset that would end with no episode in the export (all lost, or zero shards): one line,
    exit code 1, report.json counts what was lost and why, no manifest written."""


@dataclass
class RunContext:
    plan: Plan
    report: Report = field(default_factory=Report)
    beam_args: tuple[str, ...] = ()  # every pipeline's options, set up by beam_jobs.engine
    # what an interrupt reports: (the current stage's tasks kept so far: a callable, its tasks in all)
    progress: tuple | None = None
    grid_source: dict | None = None  # where the run's grid comes from (manifest["grid_source"])
    _fingerprints: dict = field(default_factory=dict, repr=False)

    @property
    def options(self) -> RunOptions:
        return self.plan.options

    @property
    def mixture(self) -> Mixture:
        return self.plan.mixture

    @property
    def configs(self) -> dict[str, DatasetConfig]:
        return self.plan.mixture.datasets

    @property
    def datasets(self) -> dict[str, RLDSDataset]:
        return self.plan.datasets

    @property
    def out(self) -> str:
        return self.plan.out

    def path(self, *parts: str) -> str:
        return files.join(self.out, *parts)

    def fingerprint(self, name: str) -> str:
        """A content key of what this run reads of a dataset (sources.rlds.fingerprint), once per run."""
        if name not in self._fingerprints:
            self._fingerprints[name] = fingerprint(self.datasets[name], self.options.split)
        return self._fingerprints[name]

    @property
    def frames_dir(self) -> str | None:
        """The frame cache (None: --cache none): OUT/.cache/frames, or DIR/frames for --cache DIR."""
        cache = self.options.cache
        if cache is not None and cache.lower() == "none":
            return None
        return files.join(files.absolute(cache) if cache else self.path(".cache"), "frames")

    @property
    def shared_cache(self) -> bool:
        """The frame cache is --cache DIR, which other outputs may use too."""
        return self.frames_dir is not None and self.options.cache is not None

    @property
    def statistics_path(self) -> str:
        return self.path(STATISTICS_FILE)

    @property
    def grid_path(self) -> str:
        return self.path(grid_relpath(self.mixture.name))
