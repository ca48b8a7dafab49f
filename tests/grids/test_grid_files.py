"""Malformed or inconsistent grid files are refused when loaded, with one line naming the file and the
key; every grid that is accepted encodes any action (extremes, NaN included) into [0, total_tokens)."""

import copy
import json
import math

import numpy as np
import pytest

from grids.grid import RANGES, ActionGrid, GridFileError, grid_from_gaussians, uniform_grid
from grids.tokenizer import ActionTokenizer

BASE = grid_from_gaussians(
    {v: {"mu": 0.1, "sigma": 0.4} for v in ("x", "y", "z", "theta", "phi", "r", "roll", "pitch", "yaw")},
    provenance={"mixture": "t"},
).to_json()


def actions(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1.5, 1.5, (n, 7))
    a[: n // 10] = rng.choice([-1.0, 1.0, 0.0, np.nan, np.inf, -np.inf, 1e300], (n // 10, 7))
    return a


def assert_in_vocabulary(grid: ActionGrid) -> None:
    tok = ActionTokenizer(grid)
    with np.errstate(invalid="ignore"):  # NaN actions (the pipeline refuses them before) cast to int
        t = tok.encode(actions(5000))
    assert t.min() >= 0 and t.max() < grid.total_tokens, (t.min(), t.max(), grid.total_tokens)
    assert (t[:, 0] < tok.rotation_offset).all() and (t[:, 2] >= tok.gripper_offset).all()
    finite = np.isfinite(tok.decode(t)).all()
    assert finite


def mutated(path: str, value):
    doc = copy.deepcopy(BASE)
    node = doc
    *parents, leaf = path.split(".")
    for p in parents:
        node = node[p]
    if value is DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return doc


DELETE = object()
theta = BASE["bin_policy"]["translation"]["theta_bins"]
yaw = BASE["bin_policy"]["rotation"]["yaw_bins"]

REFUSED = [
    ("num_bins.translation.theta_bins", 0, "num_bins.translation.theta_bins must be a whole number of bins >= 1"),
    ("num_bins.translation.theta_bins", -3, "must be a whole number of bins"),
    ("num_bins.translation.theta_bins", 16.5, "must be a whole number of bins"),
    ("num_bins.translation.theta_bins", "16", "must be a whole number of bins"),
    ("num_bins.translation.theta_bins", True, "must be a whole number of bins"),
    ("num_bins.translation.theta_bins", None, "must be a whole number of bins"),
    ("num_bins.translation.phi_bins", 33, "phi_bins has 33 edges, num_bins.translation.phi_bins says 33 bins"),
    ("num_bins.rotation.yaw_bins", 10**6, "yaw_bins has 17 edges"),
    ("num_bins.gripper", 1, "num_bins.gripper must be 2"),
    ("num_bins.gripper", 3, "num_bins.gripper must be 2"),
    ("num_bins.total", 9000, "num_bins.total is 9000, the bins make 8194 tokens"),
    ("num_bins.translation", [16, 32, 8], "'num_bins.translation' must be a mapping"),
    ("bin_policy.translation.theta_bins", theta[:-1], "has 16 edges, num_bins.translation.theta_bins says 16 bins"),
    ("bin_policy.translation.theta_bins", theta[::-1], "theta_bins: edges must not decrease"),
    ("bin_policy.translation.theta_bins", [*theta[:-1], 4.0], "edges must lie within theta's range [0, 3.14159]"),
    ("bin_policy.rotation.yaw_bins", [-2.0, *yaw[1:]], "edges must lie within yaw's range [-1, 1]"),
    ("bin_policy.rotation.yaw_bins", [*yaw[:-1], float("nan")], "yaw_bins: edges must be finite"),
    ("bin_policy.rotation.yaw_bins", [*yaw[:-1], float("inf")], "yaw_bins: edges must be finite"),
    ("bin_policy.rotation.yaw_bins", ["a"] * len(yaw), "yaw_bins: edges must be numbers"),
    ("bin_policy.rotation.yaw_bins", [True] * len(yaw), "yaw_bins: edges must be numbers"),
    ("bin_policy.rotation.yaw_bins", {"a": 1}, "'bin_policy.rotation.yaw_bins' must be a list"),
    ("bin_policy.rotation", DELETE, "missing 'bin_policy.rotation'"),
    ("gs_params.x", {"mu": float("nan"), "sigma": 1.0}, "gs_params.x: mu and sigma must be finite"),
    ("gs_params.x", {"mu": 0.0, "sigma": float("inf")}, "gs_params.x: mu and sigma must be finite"),
    ("gs_params.roll", {"mu": 0.0, "sigma": -0.2}, "gs_params.roll: sigma must be > 0"),
    ("gs_params.roll", {"mu": 0.0, "sigma": 0}, "gs_params.roll: sigma must be > 0"),
    ("gs_params.roll", {"mu": "0", "sigma": 1}, 'gs_params.roll must be {"mu": number, "sigma": number}'),
    ("gs_params.w", {"mu": 0.0, "sigma": 1.0}, "gs_params.w: unknown variable"),
    ("gs_params", [1, 2], "'gs_params' must be a mapping"),
    ("use_spherical", "yes", "use_spherical must be true or false"),
    ("use_spherical", False, "only spherical translation grids"),
    ("distribution", 5, "distribution must be one of gaussian, empirical, uniform"),
    ("provenance", "x", "'provenance' must be a mapping"),
]


@pytest.mark.parametrize("path, value, message", REFUSED, ids=[f"{p}={str(v)[:12]}" for p, v, _ in REFUSED])
def test_malformed_grid_files_are_refused_naming_file_and_key(tmp_path, path, value, message):
    f = tmp_path / "grid.json"
    f.write_text(json.dumps(mutated(path, value)))
    with pytest.raises(GridFileError) as e:
        ActionGrid.load(str(f))
    text = str(e.value)
    assert text.startswith(f"{f}: ") and message in text and "\n" not in text, text


def test_too_many_tokens_for_the_vocabulary(tmp_path):
    grid = uniform_grid({"theta": 16, "phi": 32, "r": 9})  # 4608 translation tokens
    f = tmp_path / "big.json"
    f.write_text(grid.dumps())
    with pytest.raises(
        GridFileError, match="4608 translation and 4096 rotation tokens; SpatialVLA's action vocabulary"
    ):
        ActionGrid.load(str(f))


def test_not_a_grid_file_at_all(tmp_path):
    for text, message in [
        ("[1, 2]", "expected a JSON object"),
        ("{", "not JSON"),
        ("[" * 100000 + "]" * 100000, "nested too deeply"),
        ('{"num_bins": {}}', "missing 'bin_policy'"),
        ('{"num_bins": {}, "bin_policy": {}}', "missing 'num_bins.translation'"),
    ]:
        f = tmp_path / "g.json"
        f.write_text(text)
        with pytest.raises(GridFileError, match=message):
            ActionGrid.load(str(f))
    out = tmp_path / "out"
    (out / "grids").mkdir(parents=True)
    (out / "grids" / "mix.json").write_text(json.dumps(BASE))
    with pytest.raises(GridFileError, match=rf"is a directory, not a file; give the grid file {out}/grids/mix.json"):
        ActionGrid.load(str(out))


def test_every_accepted_grid_tokenizes_into_the_vocabulary():
    """Random grids within the limits (random counts, random non-decreasing edges with repeats, edges
    that stop short of the range) are accepted and stay in vocabulary; random corruptions of them are
    either refused or stay in vocabulary too."""
    rng = np.random.default_rng(3)
    accepted = refused = 0
    for trial in range(60):
        counts = {"theta": int(rng.integers(1, 17)), "phi": int(rng.integers(1, 33)), "r": int(rng.integers(1, 9))}
        counts |= {v: int(rng.integers(1, 17)) for v in ("roll", "pitch", "yaw")}
        grid = uniform_grid(counts)
        for v, n in counts.items():
            lo, hi = RANGES[v]
            e = np.sort(rng.uniform(lo, hi, n + 1))
            if rng.random() < 0.3:
                e[1:-1] = e[1]  # empty bins
            if rng.random() < 0.5:
                e[0], e[-1] = lo, hi
            grid.edges[v] = e
        doc = grid.to_json()
        back = ActionGrid.from_json(json.loads(json.dumps(doc)), "random")
        assert_in_vocabulary(back)
        accepted += 1
        # a random corruption: one number replaced
        bad = copy.deepcopy(doc)
        group, var = [("translation", "theta"), ("translation", "phi"), ("rotation", "yaw")][trial % 3]
        edges = bad["bin_policy"][group][f"{var}_bins"]
        edges[int(rng.integers(len(edges)))] = float(rng.choice([np.nan, 9.0, -9.0, 0.5, math.inf]))
        try:
            grid = ActionGrid.from_json(bad, "corrupt")
        except GridFileError:
            refused += 1
        else:
            assert_in_vocabulary(grid)
    assert accepted == 60 and refused > 10
