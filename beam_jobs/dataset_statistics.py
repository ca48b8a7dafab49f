"""The statistics job: per dataset, the statistics of its standardized actions (and proprio).

tasks -> per task: a partial DatasetStatistics and its problems -> combined per dataset
"""

from __future__ import annotations

import apache_beam as beam

from beam_jobs.combines import CombinePerDataset, Partial, grouped_tasks
from beam_jobs.progress import Ticker
from beam_jobs.reading import TaskReaderFn
from transforms.statistics import DatasetStatistics


class ReadStatisticsFn(TaskReaderFn):
    """(group, ReadTask) -> ((dataset, group), Partial[DatasetStatistics])."""

    def __init__(self, configs: dict):
        super().__init__(configs, proprio=True)
        self.ticker = Ticker("stats")

    def process(self, element):
        group, task = element
        episodes, problems = self.read(task)
        acc = DatasetStatistics()
        for ep in episodes:
            acc.add_episode(ep.action, ep.proprio)
        self.ticker(len(episodes), sum(ep.num_steps for ep in episodes))
        yield (task.dataset, group), Partial(acc.flush(), problems)


def _record(name: str, partial: Partial) -> tuple:
    """(dataset, statistics or None, problems, notes about outliers)."""
    acc = partial.acc
    stats = acc.extract() if acc.action.n else None
    problems = sorted(partial.problems, key=lambda p: (p["file"], p["episode_id"] or "", p["reason"]))
    return name, stats, problems, acc.outlier_notes() if stats else []


def build_statistics(p: beam.Pipeline, tasks: list, configs: dict) -> beam.PCollection:
    """-> (dataset, statistics or None when nothing was usable, problems, outlier notes) per dataset."""
    return (
        grouped_tasks(p, tasks)
        | "ReadStatistics" >> beam.ParDo(ReadStatisticsFn(configs))
        | "Combine" >> CombinePerDataset(DatasetStatistics)
        | "Extract" >> beam.MapTuple(_record)
    )
