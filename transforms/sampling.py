"""Which steps of an episode are training samples: the registry's sample filters (manifests/vocabulary.py).

A filtered step stays in the shards (the action chunks of the steps before it include it, as in the
public pipelines, which filter frames after chunking); the shards' `sampled` column marks it False
and the trainer's readers never yield it as a sample.
"""

from __future__ import annotations

import numpy as np

from transforms.normalize import normalize

TOLERANCE = 1e-5  # of the normalized action, as the public DROID filter compares


def zero_movement(normalized: np.ndarray, stats: dict, mode: str) -> np.ndarray:
    """bool [T]: True where a step moves, i.e. not all six movement dimensions of its normalized
    action lie within 1e-5 of the normalized zero (the gripper is ignored)."""
    zero = normalize(np.zeros((1, normalized.shape[1])), stats, mode)[0, :6]
    return (np.abs(normalized[:, :6] - zero) > TOLERANCE).any(axis=1)


FILTERS = {"zero_movement": zero_movement}


def sampled(normalized: np.ndarray, stats: dict, mode: str, sample_filter: str | None) -> np.ndarray:
    """bool [T]: which steps are training samples, from the episode's normalized actions."""
    if sample_filter is None:
        return np.ones(len(normalized), bool)
    return FILTERS[sample_filter](normalized, stats, mode)


def chunk_sampled(moves: np.ndarray, chunk: int = 1, ends: np.ndarray | None = None) -> np.ndarray:
    """bool [T]: step t is a training sample when any step of its action chunk t..t+chunk-1 moves,
    as the public pipelines filter chunks; padding past the end never moves. `ends` [T]: where each
    step's episode ends (exclusive), for several episodes in a row; default: one episode."""
    moves = np.asarray(moves, bool)
    moved = np.concatenate([[0], np.cumsum(moves)])
    t = np.arange(len(moves))
    end = len(moves) if ends is None else np.asarray(ends)
    return moved[np.minimum(t + max(1, chunk), end)] > moved[t]
