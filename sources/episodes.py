"""Read -> standardize -> problems, without Beam: the one loop that the Beam jobs, the tools, the
benchmarks and the tests all run over RLDS shards.

An episode that cannot be used (not matching features.json, empty, too short for its transform,
non-finite actions, lost in a corrupt shard) comes out as a problem record, never dropped
silently: {"dataset", "file", "episode_id", "reason", "episodes_lost"}. An episode kept with a
remark (no instruction) gives a problem with episodes_lost = 0 and the episode itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from manifests.registry import DatasetConfig
from sources.rlds import BadRecord, RLDSDataset, RLDSError, ShardSlice
from transforms.episode import StandardEpisode
from transforms.standardize import EpisodeError, required_keys, standardize


@dataclass(frozen=True)
class ReadTask:
    """One shard slice of one dataset: the unit of reading work."""

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
    return {
        "dataset": dataset,
        "file": file,
        "episode_id": episode_id,
        "reason": reason,
        "episodes_lost": episodes_lost,
    }


def is_problem(item) -> bool:
    return isinstance(item, dict)


def standard_episodes(
    task: ReadTask,
    cfg: DatasetConfig,
    images: bool = False,
    proprio: bool = False,
    skip: frozenset = frozenset(),
    dataset: RLDSDataset | None = None,
) -> Iterator[StandardEpisode | dict]:
    """The standardized episodes of one shard slice, and a problem record for each that is not usable.
    `skip`: episode ids already done (a resumed export); `dataset`: an opened RLDSDataset to reuse."""
    ds = dataset or RLDSDataset(task.directory, task.dataset)
    keys = required_keys(cfg, images=images, proprio=proprio)
    done = 0
    try:
        for raw in ds.read(task.shard, keys):
            done += 1
            if raw.episode_id in skip:
                continue
            if isinstance(raw, BadRecord):
                yield problem(task.dataset, task.shard.path, raw.reason, raw.episode_id)
                continue
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
                        yield problem(task.dataset, task.shard.path, "missing instruction (kept)", raw.episode_id, 0)
            if bad:
                yield problem(task.dataset, task.shard.path, bad, raw.episode_id)
                continue
            yield ep
    except RLDSError as e:
        yield problem(task.dataset, task.shard.path, str(e), None, task.shard.num_episodes - done)


def dataset_episodes(
    ds: RLDSDataset, cfg: DatasetConfig, split: str = "train", **kw
) -> Iterator[StandardEpisode | dict]:
    """standard_episodes over every shard slice of a split of one dataset."""
    for task in plan_reads({cfg.name: ds}, split):
        yield from standard_episodes(task, cfg, dataset=ds, **kw)
