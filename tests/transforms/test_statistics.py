"""Streaming statistics against numpy on the concatenated data."""

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that

from beam_jobs.combines import ComputeStatistics
from transforms.episode import StandardEpisode
from transforms.statistics import BINS, Accumulator, DatasetStatistics

TOL = 1e-3  # quantiles: |q - exact| <= TOL * (max - min)


def mixed_data(n=40_000, seed=0):
    rng = np.random.default_rng(seed)
    x = np.column_stack(
        [
            rng.normal(0.1, 0.3, n),  # gaussian
            rng.standard_cauchy(n),  # heavy tails, huge outliers
            rng.exponential(0.02, n),  # skewed, small scale
            np.where(rng.random(n) < 0.01, 50.0, rng.normal(0, 1e-3, n)),  # rare spikes
            rng.uniform(-np.pi, np.pi, n),
            np.full(n, 0.25),  # constant dimension
            rng.integers(0, 2, n).astype(float),  # gripper
        ]
    )
    return x


def check_against_numpy(stats: dict, x: np.ndarray):
    rng_ = x.max(0) - x.min(0)
    np.testing.assert_allclose(stats["mean"], x.mean(0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(stats["std"], x.std(0), rtol=1e-6, atol=1e-12)
    np.testing.assert_array_equal(stats["min"], x.min(0))
    np.testing.assert_array_equal(stats["max"], x.max(0))
    for key, q in (("q01", 0.01), ("q99", 0.99)):
        err = np.abs(np.asarray(stats[key]) - np.quantile(x, q, axis=0))
        assert (err <= TOL * rng_ + 1e-15).all(), (key, err / np.maximum(rng_, 1e-300))


def split_merge(x, sizes, order):
    parts = np.split(x, np.cumsum(sizes)[:-1])
    accs = []
    for p in parts:
        a = Accumulator(x.shape[1])
        a.add(p)
        accs.append(a)
    accs = [accs[i] for i in order]
    while len(accs) > 1:  # merge as a tree, the way a runner might
        accs = [accs[i].merge(accs[i + 1]) if i + 1 < len(accs) else accs[i] for i in range(0, len(accs), 2)]
    return accs[0].extract()


def test_matches_numpy_on_mixed_distributions():
    x = mixed_data()
    rng = np.random.default_rng(1)
    sizes = rng.integers(1, 400, 300)
    sizes = np.append(sizes, len(x) - sizes.sum())
    stats = split_merge(x, sizes, rng.permutation(len(sizes)))
    check_against_numpy(stats, x)
    assert stats["q01"][5] == stats["q99"][5] == 0.25  # constant dimension: exact


def test_merge_order_does_not_matter():
    x = mixed_data(8_000, seed=3)
    sizes = [1000] * 8
    a = split_merge(x, sizes, list(range(8)))
    b = split_merge(x, sizes, [7, 2, 5, 0, 1, 6, 3, 4])
    for key in ("q01", "q99", "min", "max"):
        assert a[key] == b[key]
    np.testing.assert_allclose(a["mean"], b["mean"], rtol=1e-12)


def test_single_step_and_widening_ranges():
    a = Accumulator(1)
    a.add(np.array([[3.0]]))
    assert a.extract()["q01"] == [3.0] and a.extract()["std"] == [0.0]
    # ranges that grow by orders of magnitude force the bins to widen many times
    x = np.concatenate([np.linspace(0, 1e-6, 1000), np.linspace(-5, 5, 1000), np.array([1e6])])[:, None]
    acc = Accumulator(1)
    for chunk in np.array_split(x, 50):
        acc.add(chunk)
        acc.flush()
    check_against_numpy(acc.extract(), x)


def test_memory_does_not_grow_with_data():
    def size(n):
        acc = Accumulator(7)
        for chunk in np.array_split(mixed_data(n), max(n // 100, 1)):
            acc.add(chunk)
        acc.flush()
        return acc.counts.nbytes + acc.mean.nbytes * 6

    assert size(1_000) == size(200_000) == 7 * BINS * 8 + 7 * 8 * 6


def test_non_finite_rows_are_refused():
    with pytest.raises(ValueError, match="non-finite"):
        Accumulator(7).add(np.full((2, 7), np.nan))


def test_dataset_statistics_layout():
    rng = np.random.default_rng(0)
    s = DatasetStatistics()
    for _ in range(5):
        s.add_episode(rng.normal(size=(10, 7)), rng.normal(size=(10, 3)))
    out = s.extract()
    assert out["num_transitions"] == 50 and out["num_trajectories"] == 5
    assert out["action"]["mask"] == [True] * 6 + [False]
    assert set(out["action"]) == {"mean", "std", "max", "min", "q01", "q99", "mask"}
    assert len(out["proprio"]["mean"]) == 3


def episodes(seed=0, n=30):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        t = int(rng.integers(1, 40))
        ds = ["a", "b"][i % 2]
        out.append(
            StandardEpisode(
                ds,
                f"{ds}#{i}",
                rng.normal(size=(t, 7)).astype(np.float32),
                proprio=rng.normal(size=(t, 4)).astype(np.float32),
            )
        )
    return out


@pytest.mark.parametrize("options", [[], ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]])
def test_beam_job_equals_pure_accumulator(options):
    eps = episodes()
    expected = {}
    for ds in ("a", "b"):
        s = DatasetStatistics()
        for e in eps:
            if e.dataset == ds:
                s.add_episode(e.action, e.proprio)
        expected[ds] = s.extract()

    def matches(actual):
        assert sorted(name for name, _ in actual) == ["a", "b"]
        for name, stats in actual:
            for key in ("q01", "q99", "min", "max"):
                np.testing.assert_allclose(stats["action"][key], expected[name]["action"][key], rtol=0, atol=1e-12)
            np.testing.assert_allclose(stats["action"]["mean"], expected[name]["action"]["mean"], rtol=1e-9)
            np.testing.assert_allclose(stats["proprio"]["std"], expected[name]["proprio"]["std"], rtol=1e-9)
            assert stats["num_trajectories"] == expected[name]["num_trajectories"]
            assert stats["num_transitions"] == expected[name]["num_transitions"]

    with beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner", *options])) as p:
        assert_that(p | beam.Create(eps) | ComputeStatistics(), matches)
