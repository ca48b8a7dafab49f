"""Count, mean and M2 (sum of squared deviations) of two parts merged into those of their union
(Chan, Golub & LeVeque's pairwise update): the one moments merge of the statistics and the grid fit."""

from __future__ import annotations

import numpy as np


def merge_moments(
    n_a: float, mean_a: np.ndarray, m2_a: np.ndarray, n_b: float, mean_b: np.ndarray, m2_b: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """(count, mean, M2) of the union; counts may be weights. Part b must not be empty."""
    total = n_a + n_b
    delta = mean_b - mean_a
    return total, mean_a + delta * (n_b / total), m2_a + m2_b + delta**2 * (n_a * n_b / total)
