"""Read and standardize RLDS episodes in Beam: one element per shard slice, out one per episode.

Episodes that cannot be used (too short, non-finite actions, empty, not matching the
schema, lost in a corrupt shard) go to the `bad` output as problem records, counted and
reported by the caller, never dropped silently.
"""
from __future__ import annotations

from dataclasses import dataclass

import apache_beam as beam
import numpy as np

from pipeline.rlds import BadRecord, RLDSDataset, RLDSError, ShardSlice
from transforms.episode import StandardEpisode
from transforms.standardize import EpisodeError, required_keys, standardize

BAD = "bad"


@dataclass(frozen=True)
class ReadTask:
    dataset: str
    directory: str
    shard: ShardSlice


def plan_reads(datasets: dict[str, RLDSDataset], split: str, max_episodes: int | None = None) -> list[ReadTask]:
    """Shard slices of every dataset for a split, the first `max_episodes` of each when given."""
    tasks = []
    for name, ds in datasets.items():
        left = max_episodes
        for s in ds.plan(split):
            if left is not None:
                if left <= 0:
                    break
                s = ShardSlice(s.path, s.start, min(s.stop, s.start + left), s.offset)
                left -= s.num_episodes
            tasks.append(ReadTask(name, ds.directory, s))
    return tasks


def problem(dataset: str, file: str, reason: str, episode_id: str | None = None, episodes_lost: int = 1) -> dict:
    return {"dataset": dataset, "file": file, "episode_id": episode_id, "reason": reason, "episodes_lost": episodes_lost}


class ReadStandardEpisodesFn(beam.DoFn):
    """ReadTask -> StandardEpisode (main output) and problem records (`bad`)."""

    def __init__(self, configs: dict, images: bool = False, proprio: bool = False, skip: frozenset = frozenset()):
        self.configs = configs
        self.images = images
        self.proprio = proprio
        self.skip = skip  # episode ids already done (a resumed export)
        self.read_counter = beam.metrics.Metrics.counter("read", "episodes")
        self.bad_counter = beam.metrics.Metrics.counter("read", "bad_episodes")

    def setup(self):
        self._datasets = {}

    def _dataset(self, task: ReadTask) -> RLDSDataset:
        if task.dataset not in self._datasets:
            self._datasets[task.dataset] = RLDSDataset(task.directory, task.dataset)
        return self._datasets[task.dataset]

    def process(self, task: ReadTask):
        cfg = self.configs[task.dataset]
        keys = required_keys(cfg, images=self.images, proprio=self.proprio)
        done = 0
        try:
            for raw in self._dataset(task).read(task.shard, keys):
                done += 1
                if raw.episode_id in self.skip:
                    continue
                if isinstance(raw, BadRecord):
                    self.bad_counter.inc()
                    yield beam.pvalue.TaggedOutput(BAD, problem(task.dataset, task.shard.path, raw.reason, raw.episode_id))
                    continue
                self.read_counter.inc()
                bad = None
                if raw.num_steps == 0:
                    bad = "empty episode (0 steps)"
                else:
                    try:
                        ep = standardize(raw, cfg)
                    except EpisodeError as e:
                        bad = str(e)
                    else:
                        if not np.isfinite(ep.action).all():
                            rows = np.flatnonzero(~np.isfinite(ep.action).all(axis=1))
                            bad = f"non-finite action at step(s) {rows[:5].tolist()}"
                        elif cfg.instruction and not ep.has_instruction:
                            # kept, but counted: training with an empty instruction is a choice to see
                            yield beam.pvalue.TaggedOutput(BAD, problem(task.dataset, task.shard.path,
                                                                        "missing instruction (kept)", raw.episode_id, 0))
                if bad:
                    self.bad_counter.inc()
                    yield beam.pvalue.TaggedOutput(BAD, problem(task.dataset, task.shard.path, bad, raw.episode_id))
                    continue
                yield ep
        except RLDSError as e:
            lost = task.shard.num_episodes - done
            self.bad_counter.inc(lost)
            yield beam.pvalue.TaggedOutput(BAD, problem(task.dataset, task.shard.path, str(e), None, lost))


class ReadStandardEpisodes(beam.PTransform):
    """PBegin -> {main: StandardEpisode, bad: problem dict}."""

    def __init__(self, tasks: list[ReadTask], configs: dict, images: bool = False, proprio: bool = False,
                 skip: frozenset = frozenset()):
        super().__init__()
        self.tasks = tasks
        self.fn = ReadStandardEpisodesFn(configs, images, proprio, skip)

    def expand(self, pbegin):
        return (pbegin
                | "ShardSlices" >> beam.Create(self.tasks)
                | "Spread" >> beam.Reshuffle()
                | "ReadStandardize" >> beam.ParDo(self.fn).with_output_types(StandardEpisode)
                .with_outputs(BAD, main="episodes"))
