"""Sampling weights of a mixture (pure python; shared by the grid fit, the manifest and the reader)."""

from __future__ import annotations


def effective_weights(weights: dict, num_transitions: dict, balance: bool = True) -> dict:
    """The probability that a sampled step comes from each dataset.

    balance=True (OpenVLA's and SpatialVLA's default): weight x number of transitions, normalized;
    balance=False: the given weights, normalized."""
    top = max(weights.values(), default=0.0)
    # scaled by the largest weight first, so that any positive finite weights (1e308 too) stay finite
    raw = {n: (w / top if top > 0 else 0.0) * (num_transitions[n] if balance else 1) for n, w in weights.items()}
    total = sum(raw.values())
    if not total > 0:
        raise ValueError("mixture has no transitions to sample")
    return {n: v / total for n, v in raw.items()}
