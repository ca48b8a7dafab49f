"""Gripper conventions -> the pipeline's absolute gripper: 1.0 = open, 0.0 = closed.

Each dataset's convention is named in manifests/datasets.yaml, from the table of
manifests/vocabulary.py; CONVENTIONS implements every name of that table (a test holds the two
together). Every function takes the dataset's raw gripper column [T] and returns float32 [T].

As in the public OXE transforms (OpenVLA, Octo, SpatialVLA), only two conventions binarize:
Bridge's continuous command (next decisive value) and relative commands (integrated). The others
keep the stored value, clipped and/or inverted: a continuous gripper stays continuous, and the
action tokenizer thresholds it at 0.5 as SpatialVLA's does.
"""

from __future__ import annotations

import numpy as np

OPEN_ABOVE, CLOSED_BELOW = 0.95, 0.05  # decisive thresholds of a continuous gripper (Bridge)
RELATIVE_DEADBAND = 0.1  # relative commands within +-0.1 mean "no change"


def continuous_open(g: np.ndarray) -> np.ndarray:
    """Continuous command, 1 = open (Bridge). Values strictly above 0.95 / below 0.05 are decisive
    (1 / 0); an in-between value takes the next decisive value (the gripper is moving towards it);
    in-between values after the last decisive one all take the episode's last raw value."""
    g = np.asarray(g, np.float64)
    t = len(g)
    if t == 0:
        return np.zeros(0, np.float32)
    decisive = (g > OPEN_ABOVE) | (g < CLOSED_BELOW)
    nxt = np.where(decisive, np.arange(t), t)
    nxt = np.minimum.accumulate(nxt[::-1])[::-1]  # index of the next decisive step, or t
    value = np.where(g > OPEN_ABOVE, 1.0, 0.0)
    return np.where(nxt < t, value[np.minimum(nxt, t - 1)], g[-1]).astype(np.float32)


def relative(g: np.ndarray) -> np.ndarray:
    """Relative commands (+1 close, -1 open, within +-0.1 no change) integrated to an absolute
    state. Before the first command the gripper is in the state opposite to that command; with
    no command at all it is open."""
    g = np.asarray(g, np.float64)
    cmd = np.where(g < -RELATIVE_DEADBAND, 1.0, np.where(g > RELATIVE_DEADBAND, 0.0, np.nan))  # 1 = open
    has = ~np.isnan(cmd)
    if not has.any():
        return np.ones(len(g), np.float32)
    start = 1.0 - cmd[np.argmax(has)]
    last = np.maximum.accumulate(np.where(has, np.arange(len(g)), -1))
    return np.where(last >= 0, cmd[np.maximum(last, 0)], start).astype(np.float32)


def _f32(g) -> np.ndarray:
    return np.asarray(g, np.float64)


CONVENTIONS = {
    "continuous_open": continuous_open,
    "absolute_open": lambda g: _f32(g),
    "absolute_closed": lambda g: 1.0 - _f32(g),
    "signed_open": lambda g: np.clip(_f32(g), 0.0, 1.0),
    "signed_closed": lambda g: 1.0 - np.clip(_f32(g), 0.0, 1.0),
    "relative": relative,
    "always_open": lambda g: np.ones(len(g)),
    "always_closed": lambda g: np.zeros(len(g)),
}


def to_absolute_open(g: np.ndarray, convention: str) -> np.ndarray:
    return CONVENTIONS[convention](np.asarray(g).reshape(-1)).astype(np.float32)
