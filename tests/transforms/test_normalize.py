import numpy as np
import pytest

from transforms.normalize import normalize, unnormalize

STATS = {
    "mean": [0.1, 0, 0, 0, 0, 0, 0.5],
    "std": [0.2, 1, 1, 1, 1, 0, 0.5],
    "min": [-1, -2, -3, 0, 0, 0.3, 0],
    "max": [1, 2, 3, 1, 1, 0.3, 1],
    "q01": [-0.5, -1, -2, 0.2, 0.1, 0.3, 0],
    "q99": [0.5, 1, 2, 0.8, 0.9, 0.3, 1],
    "mask": [True] * 6 + [False],
}


def test_bounds_q99_formula_clip_degenerate_and_gripper():
    x = np.array([[0.25, -3.0, 2.0, 0.5, 0.1, 7.0, 1.0], [-0.5, 0.0, 0.0, 0.2, 0.9, 0.3, 0.0]])
    y = normalize(x, STATS)
    q01, q99 = np.array(STATS["q01"]), np.array(STATS["q99"])
    by_hand = 2 * (x[:, :5] - q01[:5]) / (q99[:5] - q01[:5]) - 1
    np.testing.assert_allclose(y[:, :5], np.clip(by_hand, -1, 1), atol=1e-6)
    assert y[0, 1] == -1.0  # clipped
    assert (y[:, 5] == 0).all()  # q01 == q99: no information
    np.testing.assert_array_equal(y[:, 6], x[:, 6])  # gripper untouched
    assert y.dtype == np.float32


@pytest.mark.parametrize("mode", ["bounds_q99", "bounds", "normal"])
def test_round_trip_inside_bounds(mode):
    rng = np.random.default_rng(0)
    x = rng.uniform(STATS["q01"], STATS["q99"], size=(100, 7))
    x[:, 5] = 0.3
    x[:, 6] = rng.integers(0, 2, 100)
    back = unnormalize(normalize(x, STATS, mode), STATS, mode)
    if mode == "normal":
        live = [0, 1, 2, 3, 4, 6]
        np.testing.assert_allclose(back[:, live], x[:, live], atol=1e-5)
    else:
        np.testing.assert_allclose(back, x, atol=1e-5)


def test_normal_mode_and_unknown_mode():
    x = np.full((1, 7), 0.5)
    y = normalize(x, STATS, "normal")
    assert y[0, 0] == pytest.approx((0.5 - 0.1) / 0.2) and y[0, 5] == 0
    with pytest.raises(ValueError, match="normalization mode"):
        normalize(x, STATS, "minmax")
