"""Statistics job: StandardEpisode -> (dataset, statistics dict), one mergeable combine per dataset."""
from __future__ import annotations

import apache_beam as beam

from beam_jobs.combine import MergingCombineFn
from transforms.statistics import DatasetStatistics


class DatasetStatsFn(MergingCombineFn):
    def create_accumulator(self):
        return DatasetStatistics()

    def add_input(self, acc, columns):
        action, proprio = columns
        acc.add_episode(action, proprio)
        return acc

    def compact(self, acc):
        acc.action.flush()
        if acc.proprio is not None:
            acc.proprio.flush()
        return acc

    def extract_output(self, acc):
        return acc.extract()


class ComputeStatistics(beam.PTransform):
    """PCollection[StandardEpisode] (finite actions) -> PCollection[(dataset, statistics)]."""

    def expand(self, episodes):
        return (episodes
                | "Columns" >> beam.Map(lambda e: (e.dataset, (e.action, e.proprio)))
                | "PerDataset" >> beam.CombinePerKey(DatasetStatsFn())
                | "AsList" >> beam.MapTuple(lambda name, stats: [name, stats]))
