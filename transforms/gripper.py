"""Gripper conventions -> the pipeline's absolute gripper: 1.0 = open, 0.0 = closed.

Each dataset's convention is named in manifests/datasets.yaml, from the table of
manifests/vocabulary.py; CONVENTIONS implements every name of that table (a test holds the two
together). Every function takes the dataset's raw gripper column [T] and returns float32 [T]
with values in {0, 1}.
"""

from __future__ import annotations

import numpy as np

OPEN_ABOVE, CLOSED_BELOW = 0.95, 0.05  # decisive thresholds of a continuous gripper (Bridge)
RELATIVE_DEADBAND = 0.1  # relative commands within +-0.1 mean "no change"


def _binary(g: np.ndarray) -> np.ndarray:
    return (np.asarray(g, np.float64) >= 0.5).astype(np.float32)


def continuous_open(g: np.ndarray) -> np.ndarray:
    """Continuous command, 1 = open. Values between the decisive thresholds take the next
    decisive value (the gripper is moving towards it); trailing in-between values are
    thresholded at 0.5 so that the output is always binary."""
    g = np.asarray(g, np.float64)
    t = len(g)
    decisive = (g > OPEN_ABOVE) | (g < CLOSED_BELOW)
    nxt = np.where(decisive, np.arange(t), t)
    nxt = np.minimum.accumulate(nxt[::-1])[::-1]  # index of the next decisive step, or t
    value = np.where(g > OPEN_ABOVE, 1.0, 0.0)
    out = np.where(nxt < t, value[np.minimum(nxt, t - 1)], g >= 0.5)
    return out.astype(np.float32)


def relative(g: np.ndarray) -> np.ndarray:
    """Relative commands (+1 close, -1 open, ~0 no change) integrated to an absolute state.
    Before the first command the gripper is in the state opposite to that command; with
    no command at all it is open."""
    g = np.asarray(g, np.float64)
    cmd = np.where(g < -RELATIVE_DEADBAND, 1.0, np.where(g > RELATIVE_DEADBAND, 0.0, np.nan))  # 1 = open
    has = ~np.isnan(cmd)
    if not has.any():
        return np.ones(len(g), np.float32)
    start = 1.0 - cmd[np.argmax(has)]
    last = np.maximum.accumulate(np.where(has, np.arange(len(g)), -1))
    return np.where(last >= 0, cmd[np.maximum(last, 0)], start).astype(np.float32)


CONVENTIONS = {
    "continuous_open": continuous_open,
    "absolute_open": _binary,
    "absolute_closed": lambda g: 1.0 - _binary(g),
    "signed_open": lambda g: _binary(np.clip(g, 0, 1)),
    "signed_closed": lambda g: 1.0 - _binary(np.clip(g, 0, 1)),
    "relative": relative,
    "always_open": lambda g: np.ones(len(g), np.float32),
    "always_closed": lambda g: np.zeros(len(g), np.float32),
}


def to_absolute_open(g: np.ndarray, convention: str) -> np.ndarray:
    return CONVENTIONS[convention](np.asarray(g).reshape(-1)).astype(np.float32)
