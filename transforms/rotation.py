"""Rotation formats -> roll-pitch-yaw deltas."""

from __future__ import annotations

import numpy as np


def quaternion_to_euler(q: np.ndarray) -> np.ndarray:
    """Unit quaternions [N, 4] as (x, y, z, w) -> (roll, pitch, yaw) [N, 3], the extrinsic
    x-y-z angles (scipy's `as_euler('xyz')`; tensorflow_graphics' `euler.from_quaternion`)."""
    q = np.asarray(q, np.float64)
    q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
    x, y, z, w = np.moveaxis(q, -1, 0)
    roll = np.arctan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    pitch = np.arcsin(np.clip(2 * (w * y - z * x), -1.0, 1.0))
    yaw = np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    return np.stack([roll, pitch, yaw], axis=-1)
