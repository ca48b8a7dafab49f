"""The unit of work of every job: one read task (a slice of an RLDS shard) per element.

A DoFn reads its task's episodes through sources.episodes (read -> standardize -> problems) and
emits one element for the whole task: a partial accumulator or a batch of encoded episodes,
with the task's problems inside. One output per DoFn, nothing emitted from finish_bundle and
per-element overhead paid once per task: what every runner (Direct, Dask, portable) executes
the same way.
"""

from __future__ import annotations

import os
import socket

import apache_beam as beam

from sources.episodes import ReadTask, is_problem, standard_episodes
from sources.rlds import RLDSDataset


def worker_id() -> str:
    """Which process did a piece of work: reported by the driver (how the work was split)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class TaskReaderFn(beam.DoFn):
    """Base of the DoFns that read a task: episodes and problems, datasets opened once per worker."""

    def __init__(self, configs: dict, images: bool = False, proprio: bool = False, seed: int = 0):
        self.configs = configs
        self.images = images
        self.proprio = proprio
        self.seed = seed

    def setup(self):
        self._datasets: dict[str, RLDSDataset] = {}

    def read(self, task: ReadTask, images: bool | None = None) -> tuple[list, list[dict]]:
        """(standardized episodes, problem records) of one task; `images`: read the image keys (default:
        as the DoFn was made)."""
        if task.dataset not in self._datasets:
            self._datasets[task.dataset] = RLDSDataset(task.directory, task.dataset)
        images = self.images if images is None else images
        episodes, problems = [], []
        for item in standard_episodes(task, self.configs[task.dataset], images, self.proprio,
                                      dataset=self._datasets[task.dataset], seed=self.seed):  # fmt: skip
            (problems if is_problem(item) else episodes).append(item)
        return episodes, problems


def task_name(task: ReadTask) -> str:
    return f"{task.dataset}/{os.path.basename(task.shard.path)}#{task.shard.start}-{task.shard.stop}"
