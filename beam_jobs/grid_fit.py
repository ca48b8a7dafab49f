"""The grid-fit job: per dataset, what its normalized actions contribute to the grid fit.

    tasks -> per task: a partial FitAccumulator and its problems -> combined per dataset
The datasets are weighed as the trainer samples them afterwards, in the driver (grids.fit.mixture_fit).
"""

from __future__ import annotations

import functools

import apache_beam as beam

from beam_jobs.combines import CombinePerDataset, Partial, grouped_tasks
from beam_jobs.progress import Ticker
from beam_jobs.reading import TaskReaderFn
from grids.fit import FitAccumulator
from transforms.normalize import normalize


class ReadFitFn(TaskReaderFn):
    """(group, ReadTask) -> ((dataset, group), Partial[FitAccumulator])."""

    def __init__(self, configs: dict, stats: dict, normalization: str, seed: int):
        super().__init__(configs)
        self.stats, self.normalization, self.seed = stats, normalization, seed
        self.ticker = Ticker("grids")

    def process(self, element):
        group, task = element
        episodes, problems = self.read(task)
        acc = FitAccumulator(self.seed)
        for ep in episodes:
            acc.add(normalize(ep.action, self.stats[ep.dataset]["action"], self.normalization), ep.episode_id)
        self.ticker(len(episodes), sum(ep.num_steps for ep in episodes))
        yield (task.dataset, group), Partial(acc, problems)


def build_grid_fit(p: beam.Pipeline, tasks: list, configs: dict, stats: dict, normalization: str,
                   seed: int) -> beam.PCollection:  # fmt: skip
    """-> (dataset, FitAccumulator) per dataset."""
    return (
        grouped_tasks(p, tasks)
        | "ReadFit" >> beam.ParDo(ReadFitFn(configs, stats, normalization, seed))
        | "Combine" >> CombinePerDataset(functools.partial(FitAccumulator, seed))
        | "Extract" >> beam.MapTuple(lambda name, partial: (name, partial.acc))
    )
