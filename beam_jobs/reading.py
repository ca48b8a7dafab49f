"""Read and standardize RLDS episodes in Beam: one element per shard slice, out one per episode.

Thin wiring around sources.episodes: what cannot be used goes to the `bad` output as problem
records, counted and reported by the caller, never dropped silently.
"""

from __future__ import annotations

import apache_beam as beam

from sources.episodes import ReadTask, is_problem, standard_episodes
from sources.rlds import RLDSDataset
from transforms.episode import StandardEpisode

BAD = "bad"


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

    def process(self, task: ReadTask):
        if task.dataset not in self._datasets:
            self._datasets[task.dataset] = RLDSDataset(task.directory, task.dataset)
        for item in standard_episodes(
            task, self.configs[task.dataset], self.images, self.proprio, self.skip, self._datasets[task.dataset]
        ):
            if is_problem(item):
                self.bad_counter.inc(item["episodes_lost"])
                yield beam.pvalue.TaggedOutput(BAD, item)
            else:
                self.read_counter.inc()
                yield item


class ReadStandardEpisodes(beam.PTransform):
    """PBegin -> {main: StandardEpisode, bad: problem dict}."""

    def __init__(
        self,
        tasks: list[ReadTask],
        configs: dict,
        images: bool = False,
        proprio: bool = False,
        skip: frozenset = frozenset(),
    ):
        super().__init__()
        self.tasks = tasks
        self.fn = ReadStandardEpisodesFn(configs, images, proprio, skip)

    def expand(self, pbegin):
        return (
            pbegin
            | "ShardSlices" >> beam.Create(self.tasks)
            | "Spread" >> beam.Reshuffle()
            | "ReadStandardize"
            >> beam.ParDo(self.fn).with_output_types(StandardEpisode).with_outputs(BAD, main="episodes")
        )
