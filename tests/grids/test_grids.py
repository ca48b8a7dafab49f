"""Grids and the tokenizer against the formula, hand-picked token ids and numpy by hand."""

import json
import math
import re

import numpy as np
import pytest
from scipy.stats import norm

from grids.fit import FitAccumulator, mixture_fit, variables
from grids.grid import ActionGrid, GridFileError, empirical_grid, gaussian_edges, grid_from_gaussians, uniform_grid
from grids.metrics import grid_metrics, normalized_entropy
from grids.spherical import to_cartesian, to_spherical
from grids.tokenizer import ActionTokenizer
from tests.conftest import MIXTURES_MD

SQRT3 = math.sqrt(3)


def published_gs_params(column: int) -> dict:
    """SpatialVLA's published (mu, sigma) from MIXTURES.md: column 0 bridge, 1 fractal, 2 spatialvla_plus."""
    out = {}
    for line in MIXTURES_MD.read_text().splitlines():
        m = re.match(r"\|\s*(x|y|z|theta|phi|r|roll|pitch|yaw)\s*\|(.*)\|\s*$", line)
        if m:
            mu, sigma = (float(v) for v in m.group(2).split("|")[column].split(","))
            out[m.group(1)] = {"mu": mu, "sigma": sigma}
    assert len(out) == 9
    return out


def test_edges_follow_the_formula_by_hand():
    lo, hi, mu, sigma, n = 0.0, math.pi, 2.0, 0.7, 16
    a, b = norm.cdf(lo, mu, sigma), norm.cdf(hi, mu, sigma)
    by_hand = [min(max(norm.ppf(a + (b - a) * i / n, mu, sigma), lo), hi) for i in range(n + 1)]
    np.testing.assert_allclose(gaussian_edges(lo, hi, mu, sigma, n), by_hand, rtol=0, atol=1e-12)
    e = gaussian_edges(-1, 1, 0.1, 0.3, 16)
    assert e[0] == -1 and abs(e[-1] - 1) < 1e-12 and (np.diff(e) > 0).all()  # ppf(cdf(1)) rounds, as in SpatialVLA
    # equal probability: every bin holds the same truncated Gaussian mass
    mass = np.diff(norm.cdf(e, 0.1, 0.3))
    np.testing.assert_allclose(mass, mass.mean(), rtol=1e-9)


@pytest.mark.parametrize("column", [0, 1, 2])
def test_grid_from_published_params_matches_an_independent_computation(column):
    gs = published_gs_params(column)
    grid = grid_from_gaussians(gs)
    ranges = {
        "theta": (0, math.pi),
        "phi": (-math.pi, math.pi),
        "r": (0, SQRT3),
        "roll": (-1, 1),
        "pitch": (-1, 1),
        "yaw": (-1, 1),
    }
    counts = {"theta": 16, "phi": 32, "r": 8, "roll": 16, "pitch": 16, "yaw": 16}
    for v, (lo, hi) in ranges.items():
        mu, sigma = gs[v]["mu"], gs[v]["sigma"]
        p = np.linspace(norm.cdf(lo, loc=mu, scale=sigma), norm.cdf(hi, loc=mu, scale=sigma), counts[v] + 1)
        np.testing.assert_allclose(grid.edges[v], np.clip(norm.ppf(p, loc=mu, scale=sigma), lo, hi), atol=1e-12)
    doc = grid.to_json()
    assert doc["num_bins"] == {
        "translation": {"theta_bins": 16, "phi_bins": 32, "r_bins": 8},
        "rotation": {"roll_bins": 16, "pitch_bins": 16, "yaw_bins": 16},
        "gripper": 2,
        "total": 8194,
    }
    assert len(doc["bin_policy"]["translation"]["phi_bins"]) == 33 and doc["use_spherical"] is True


def test_token_ids_by_hand_on_a_uniform_grid():
    tok = ActionTokenizer(uniform_grid())
    # rotation edges are -1, -0.875, ..., 1 (16 bins of 0.125); 0.0 is an edge: it belongs to the bin above
    a = np.array(
        [
            [0, 0, 1, 0.0, -1.0, 1.0, 1.0],  # straight up: theta 0, phi 0, r 1
            [0, 0, 0, -0.875, 0.9999, -0.1, 0.4],  # r = 0: theta pi/2, phi 0
            [5, 0, 0, 7.0, -7.0, 0.125, 0.5],
        ]
    )  # out of range: clipped to (1, 0, 0) and (1, -1)
    t = tok.encode(a)
    # row 0: theta bin 0, phi = 0 is an edge of 32 bins over [-pi, pi]: bin 16, r = 1: bin floor(1 / (sqrt3/8)) = 4
    assert t[0, 0] == 0 * 256 + 16 * 8 + 4
    assert t[0, 1] == 4096 + 8 * 256 + 0 * 16 + 15  # roll 0.0 -> bin 8, pitch -1 -> 0, yaw 1 (top edge) -> 15
    assert t[0, 2] == 8193
    # row 1: theta pi/2 is an edge of 16 bins over [0, pi] -> bin 8; r 0 -> bin 0
    assert t[1, 0] == 8 * 256 + 16 * 8 + 0
    assert t[1, 1] == 4096 + 1 * 256 + 15 * 16 + 7  # -0.875 is an edge -> bin 1; 0.9999 -> 15; -0.1 -> 7
    assert t[1, 2] == 8192  # 0.4 < 0.5: closed
    # row 2: x clipped to 1: theta pi/2 -> 8, phi 0 -> 16, r 1 -> 4; roll 1 -> 15, pitch -1 -> 0, yaw 0.125 -> 9
    assert t[2, 0] == 8 * 256 + 16 * 8 + 4
    assert t[2, 1] == 4096 + 15 * 256 + 0 * 16 + 9
    assert t[2, 2] == 8193  # 0.5 is open
    assert t.dtype == np.int32


def test_round_trip_within_bin_widths():
    grid = grid_from_gaussians(published_gs_params(2))
    tok = ActionTokenizer(grid)
    rng = np.random.default_rng(0)
    a = np.clip(rng.normal(0, 0.4, (20000, 7)), -1, 1)
    a[:, 6] = rng.integers(0, 2, len(a))
    back = tok.decode(tok.encode(a)).astype(np.float64)
    for j, v in enumerate(("roll", "pitch", "yaw")):
        width = np.diff(grid.edges[v])[tok.bins(v, a[:, 3 + j])]
        assert (np.abs(back[:, 3 + j] - a[:, 3 + j]) <= width / 2 + 1e-6).all()
    th, ph, r = to_spherical(a[:, :3])
    th2, ph2, r2 = to_spherical(back[:, :3])
    inside = (
        np.abs(to_cartesian(*[grid.centres(v)[tok.bins(v, x)] for v, x in (("theta", th), ("phi", ph), ("r", r))])) <= 1
    ).all(axis=1)
    for v, x, y in (("theta", th, th2), ("r", r, r2)):
        width = np.diff(grid.edges[v])[tok.bins(v, x)]
        ok = np.abs(x - y) <= width / 2 + 1e-6
        assert ok[inside & (r > 1e-3)].all(), v
    np.testing.assert_array_equal(back[:, 6], a[:, 6])


def test_decode_rejects_foreign_tokens():
    tok = ActionTokenizer(uniform_grid())
    with pytest.raises(ValueError, match="out of range"):
        tok.decode(np.array([[4096, 4096, 8192]]))


def weighted_data(seed=0):
    rng = np.random.default_rng(seed)
    a = np.clip(rng.normal(0.1, 0.3, (6000, 7)), -1, 1)
    b = np.clip(rng.normal(-0.2, 0.5, (3000, 7)), -1, 1)
    return a, b


def test_fit_moments_equal_weighted_numpy_whatever_the_split():
    a, b = weighted_data()
    wa, wb = 0.7 / len(a), 0.3 / len(b)
    whole = {"a": FitAccumulator().add(a, "a#0"), "b": FitAccumulator().add(b, "b#0")}
    split = {"a": FitAccumulator(), "b": FitAccumulator()}
    for i, chunk in reversed(list(enumerate(np.array_split(a, 7)))):
        split["a"].merge(FitAccumulator().add(chunk, f"a#{i}"))
    for i, chunk in enumerate(np.array_split(b, 3)):
        split["b"].merge(FitAccumulator().add(chunk, f"b#{i}"))
    v = np.concatenate([variables(a), variables(b)])
    w = np.concatenate([np.full(len(a), wa), np.full(len(b), wb)])
    mean = np.average(v, axis=0, weights=w)
    std = np.sqrt(np.average((v - mean) ** 2, axis=0, weights=w))
    fit = mixture_fit(split, {"a": wa, "b": wb})
    for j, name in enumerate(("x", "y", "z", "theta", "phi", "r", "roll", "pitch", "yaw")):
        assert fit.gs_params[name]["mu"] == pytest.approx(mean[j], abs=1e-12)
        assert fit.gs_params[name]["sigma"] == pytest.approx(std[j], rel=1e-9)
    # exact: any split of the steps into episodes gives the same bits
    assert fit.gs_params == mixture_fit(whole, {"a": wa, "b": wb}).gs_params
    assert len(fit.sample_actions) == len(a) + len(b)  # below the sample bound: every step kept
    np.testing.assert_allclose(fit.histograms["roll"].sum(), 1.0)  # weights sum to 1 over the mixture


def fitted(a):
    return mixture_fit({"d": FitAccumulator().add(a, "d#0")}, {"d": 1.0})


def test_empirical_grid_is_equally_occupied_on_its_own_data():
    rng = np.random.default_rng(1)
    a = np.clip(rng.normal(0.05, 0.25, (50000, 7)), -1, 1)
    fit = fitted(a)
    grid = empirical_grid(fit.histograms, gs_params=fit.gs_params)
    m = grid_metrics(grid, a)
    for v in ("roll", "pitch", "yaw", "r", "theta"):
        occ = np.array(m["variables"][v]["occupancy"])
        assert occ.max() / occ.min() < 1.1, (v, occ)
    assert m["variables"]["roll"]["entropy"] > 0.999


def test_entropy_order_on_gaussian_data():
    rng = np.random.default_rng(2)
    a = np.clip(rng.normal(0.0, 0.25, (40000, 7)), -1, 1)
    fit = fitted(a)
    ent = {
        name: grid_metrics(g, a)["token_entropy"]
        for name, g in {
            "empirical": empirical_grid(fit.histograms),
            "gaussian": grid_from_gaussians(fit.gs_params),
            "uniform": uniform_grid(),
        }.items()
    }
    assert ent["empirical"] > ent["gaussian"] > ent["uniform"], ent


def test_normalized_entropy_by_hand():
    assert normalized_entropy(np.array([5, 5, 5, 5])) == pytest.approx(1.0)
    assert normalized_entropy(np.array([2, 2, 0, 0])) == pytest.approx(math.log(2) / math.log(4))
    p = np.array([1, 3]) / 4
    assert normalized_entropy(np.array([1, 3])) == pytest.approx(-(p * np.log(p)).sum() / math.log(2))


def test_grid_file_round_trip_and_errors(tmp_path):
    grid = grid_from_gaussians(published_gs_params(0), provenance={"mixture": "bridge"})
    path = tmp_path / "g.json"
    path.write_text(grid.dumps())
    back = ActionGrid.load(str(path))
    for v in grid.edges:
        np.testing.assert_array_equal(back.edges[v], grid.edges[v])
    assert back.provenance == {"mixture": "bridge"}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"num_bins": {}}))
    with pytest.raises(GridFileError, match=r"bad.json: not a grid file"):
        ActionGrid.load(str(bad))
    doc = grid.to_json()
    doc["bin_policy"]["rotation"]["yaw_bins"] = doc["bin_policy"]["rotation"]["yaw_bins"][:-1]
    bad.write_text(json.dumps(doc))
    with pytest.raises(
        GridFileError, match=r"bin_policy.rotation.yaw_bins has 16 edges, num_bins.rotation.yaw_bins says 16 bins"
    ):
        ActionGrid.load(str(bad))
    bad.write_text("[1, 2]")
    with pytest.raises(GridFileError, match="expected a JSON object"):
        ActionGrid.load(str(bad))


def test_configurable_counts_change_the_layout():
    grid = uniform_grid({"theta": 4, "phi": 8, "r": 2, "roll": 3, "pitch": 3, "yaw": 3})
    tok = ActionTokenizer(grid)
    assert (tok.rotation_offset, tok.gripper_offset, tok.vocab_size) == (64, 91, 93)
    t = tok.encode(np.array([[0, 0, 1, 1, 1, 1, 1]]))
    assert t.tolist() == [[0 * 16 + 4 * 2 + 1, 64 + 2 * 9 + 2 * 3 + 2, 92]]


def reference_encode(grid, actions):
    """The tokenizer's definition written plainly: arccos, atan2, searchsorted."""
    a = np.clip(np.asarray(actions, np.float64), -1, 1)
    theta, phi, r = to_spherical(a[:, :3])
    b = {
        v: np.searchsorted(grid.edges[v][1:-1], x, side="right")
        for v, x in (("theta", theta), ("phi", phi), ("r", r), ("roll", a[:, 3]), ("pitch", a[:, 4]), ("yaw", a[:, 5]))
    }
    c = grid.counts
    t0 = b["theta"] * c["phi"] * c["r"] + b["phi"] * c["r"] + b["r"]
    t1 = grid.translation_tokens + b["roll"] * c["pitch"] * c["yaw"] + b["pitch"] * c["yaw"] + b["yaw"]
    return np.column_stack([t0, t1, grid.translation_tokens + grid.rotation_tokens + (a[:, 6] >= 0.5)])


@pytest.mark.parametrize("column", [0, 1, 2])
def test_fast_encode_equals_the_plain_definition(column):
    grid = grid_from_gaussians(published_gs_params(column))
    rng = np.random.default_rng(column)
    a = np.concatenate([rng.uniform(-1.2, 1.2, (200_000, 7)), np.clip(rng.normal(0, 0.3, (200_000, 7)), -1, 1)])
    # values exactly on rotation edges and next to them
    e = grid.edges["roll"][1:-1]
    edge_rows = np.zeros((3 * len(e), 7))
    edge_rows[:, 3] = np.concatenate([e, np.nextafter(e, -2), np.nextafter(e, 2)])
    a = np.concatenate([a, edge_rows])
    got, want = ActionTokenizer(grid).encode(a), reference_encode(grid, a)
    mismatch = np.flatnonzero((got != want).any(axis=1))
    # theta/phi are compared in cos / diamond-angle space: only rounding within an ulp of an edge may differ
    assert len(mismatch) <= 2, a[mismatch]
    np.testing.assert_array_equal(got[:, 1:], want[:, 1:])
