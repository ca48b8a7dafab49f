"""Cartesian <-> spherical translation (theta: polar angle from +z, phi: azimuth, r: norm)."""

from __future__ import annotations

import numpy as np


def to_spherical(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[N, 3] -> theta in [0, pi], phi in [-pi, pi], r in [0, sqrt 3] for xyz in [-1, 1]^3.
    At r = 0 the angles are undefined; they are taken as theta = pi/2, phi = 0."""
    xyz = np.asarray(xyz, np.float64)
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    r = np.sqrt(x * x + y * y + z * z)
    theta = np.arccos(np.clip(np.divide(z, r, out=np.zeros_like(z), where=r > 0), -1.0, 1.0))
    phi = np.arctan2(y, x)
    return theta, phi, r


def to_cartesian(theta, phi, r) -> np.ndarray:
    st = np.sin(theta)
    return np.stack([r * st * np.cos(phi), r * st * np.sin(phi), r * np.cos(theta)], axis=-1)
