"""Sampling weights of a mixture (pure python; shared by the grid fit, the manifest and the reader)."""

from __future__ import annotations


def effective_weights(weights: dict, num_transitions: dict, balance: bool = True) -> dict:
    """The probability that a sampled step comes from each dataset.

    balance=True (OpenVLA's and SpatialVLA's default): weight x number of transitions, normalized;
    balance=False: the given weights, normalized."""
    raw = {n: w * (num_transitions[n] if balance else 1) for n, w in weights.items()}
    total = sum(raw.values())
    if total <= 0:
        raise ValueError("mixture has no transitions to sample")
    return {n: v / total for n, v in raw.items()}
