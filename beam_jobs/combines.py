"""The Beam combines: per-dataset statistics and the grid fit, over accumulators that merge themselves."""

from __future__ import annotations

import apache_beam as beam

from grids.fit import FitAccumulator
from transforms.statistics import DatasetStatistics


class MergingCombineFn(beam.CombineFn):
    """A CombineFn over accumulators with acc.merge(other) -> acc."""

    def merge_accumulators(self, accumulators):
        accumulators = iter(accumulators)
        merged = next(accumulators)
        for acc in accumulators:
            merged.merge(acc)
        return merged


class DatasetStatsFn(MergingCombineFn):
    """Input: (action [T, 7], proprio [T, D] or None) of one episode."""

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
        return (
            episodes
            | "Columns" >> beam.Map(lambda e: (e.dataset, (e.action, e.proprio)))
            | "PerDataset" >> beam.CombinePerKey(DatasetStatsFn())
            | "AsList" >> beam.MapTuple(lambda name, stats: [name, stats])
        )


class GridFitFn(MergingCombineFn):
    """Input: (episode_id, normalized actions [T, 7], weight per step)."""

    def __init__(self, seed: int = 0):
        self.seed = seed

    def create_accumulator(self):
        return FitAccumulator(self.seed)

    def add_input(self, acc, item):
        episode_id, actions, step_weight = item
        return acc.add(actions, step_weight, episode_id)

    def extract_output(self, acc):
        return acc
