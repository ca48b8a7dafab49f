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
from sources.features import FieldInfo
from sources.rlds import BadRecord, RLDSDataset, RLDSError, ShardSlice
from transforms.episode import StandardEpisode
from transforms.standardize import EpisodeError, required_keys, standardize


@dataclass(frozen=True)
class ReadTask:
    """One shard slice of one dataset: the unit of reading work."""

    dataset: str
    directory: str
    shard: ShardSlice


def plan_reads(datasets: dict[str, RLDSDataset], split: str, max_episodes: int | None = None,
               episodes_per_task: int | None = None) -> list[ReadTask]:  # fmt: skip
    """Shard slices of every dataset for a split, the first `max_episodes` of each when given, cut
    into tasks of at most `episodes_per_task` episodes when given."""
    tasks = []
    for name, ds in datasets.items():
        left = max_episodes
        for s in ds.plan(split):
            if left is not None:
                if left <= 0:
                    break
                stop = min(s.stop, s.start + left)
                s = ShardSlice(s.path, s.start, stop, s.offset, s.range_start, stop, s.listed)
                left -= s.num_episodes
            step = episodes_per_task or s.num_episodes or 1
            for start in range(s.start, s.stop, step):
                piece = ShardSlice(
                    s.path, start, min(s.stop, start + step), s.offset, s.range_start, s.range_stop, s.listed
                )
                tasks.append(ReadTask(name, ds.directory, piece))
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


def camera_problem(f: FieldInfo) -> str | None:
    """Why a feature cannot be a camera's frames, or None: a float image (TFDS stores a depth map as a PNG
    of the float's bytes: decoded as colour it would be noise), or a tensor that is not uint8 pixels."""
    if f.kind == "image" and f.pixel_dtype not in ("", "uint8"):
        return f"a {f.pixel_dtype} image (a depth map?), not a camera frame"
    if f.kind == "text" or (
        f.kind == "tensor"
        and f.dtype != "object"  # bytes per step: encoded frames
        and (f.dtype != "uint8" or not (len(f.shape) == 2 or (len(f.shape) == 3 and f.shape[2] in (1, 3, 4))))
    ):
        return f"a {f.dtype} {f.kind} of shape {list(f.shape)}, not a camera frame"
    return None


def camera_problems(ds: RLDSDataset, cfg: DatasetConfig) -> list[str]:
    """The configured camera keys that features.json does not declare as camera frames (keys that are
    missing altogether are the reader's to report)."""
    roles = [("images.primary", k) for k in (cfg.primary_choices or (cfg.primary_image,))]
    if cfg.wrist_image:
        roles.append(("images.wrist", cfg.wrist_image))
    problems = []
    for role, key in roles:
        why = camera_problem(ds.fields[key]) if key in ds.fields else None
        if why:
            problems.append(f"{role} '{key}' is {why}")
    return problems


def standard_episodes(
    task: ReadTask,
    cfg: DatasetConfig,
    images: bool = False,
    proprio: bool = False,
    dataset: RLDSDataset | None = None,
    seed: int = 0,
) -> Iterator[StandardEpisode | dict]:
    """The standardized episodes of one shard slice, and a problem record for each that is not usable.
    `dataset`: an opened RLDSDataset to reuse; `seed`: of the transforms' random choices."""
    ds = dataset or RLDSDataset(task.directory, task.dataset)
    keys = required_keys(cfg, images=images, proprio=proprio)
    done = 0
    try:
        cameras = camera_problems(ds, cfg) if images else []
        if cameras:  # every episode of the slice: counted under the reason, nothing decoded as noise
            reason = f"dataset '{cfg.name}': {cameras[0]}"
            yield problem(task.dataset, task.shard.path, reason, None, task.shard.num_episodes)
            return
        for raw in ds.read(task.shard, keys):
            done += 1
            if isinstance(raw, BadRecord):
                yield problem(task.dataset, task.shard.path, raw.reason, raw.episode_id, raw.episodes_lost)
                continue
            bad = None
            if raw.num_steps == 0:
                bad = "empty episode (0 steps)"
            else:
                try:
                    ep = standardize(raw, cfg, seed)
                except EpisodeError as e:
                    bad = str(e)
                else:
                    if not np.isfinite(ep.action).all():
                        rows = np.flatnonzero(~np.isfinite(ep.action).all(axis=1))
                        bad = f"non-finite action at step(s) {rows[:5].tolist()}"
                    else:
                        notes = list(ep.notes)
                        if cfg.instruction and not ep.has_instruction:
                            notes.append("missing instruction (kept)")  # training without one is a choice to see
                        for note in notes:  # kept, but counted
                            yield problem(task.dataset, task.shard.path, note, raw.episode_id, 0)
            if bad:
                yield problem(task.dataset, task.shard.path, bad, raw.episode_id)
                continue
            yield ep
    except RLDSError as e:  # the damage as the whole split range of this shard sees it: the same from every slice
        if e.first_lost is not None:
            yield problem(task.dataset, task.shard.path, str(e), None, task.shard.range_stop - e.first_lost)
            return
        # not a place in the file (e.g. a key not in features.json): each episode not read is lost on its own
        # record, so that every slicing of the work reports the same records and counts each episode once
        name = task.shard.path.rstrip("/").rsplit("/", 1)[-1]
        for index in range(task.shard.start + done, task.shard.stop):
            yield problem(task.dataset, task.shard.path, str(e), f"{name}#{index}")


def dataset_episodes(
    ds: RLDSDataset, cfg: DatasetConfig, split: str = "train", **kw
) -> Iterator[StandardEpisode | dict]:
    """standard_episodes over every shard slice of a split of one dataset."""
    for task in plan_reads({cfg.name: ds}, split):
        yield from standard_episodes(task, cfg, dataset=ds, **kw)
