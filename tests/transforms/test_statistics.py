"""Streaming statistics against numpy on the concatenated data."""

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that

from beam_jobs.combines import CombinePerDataset, Partial
from transforms.statistics import MIN_MAGNITUDE, REL_ERROR, Accumulator, DatasetStatistics, bucket_keys, bucket_values

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


def test_any_split_and_merge_order_gives_the_same_bits():
    x = mixed_data(8_000, seed=3)
    a = split_merge(x, [1000] * 8, list(range(8)))
    b = split_merge(x, [1000] * 8, [7, 2, 5, 0, 1, 6, 3, 4])
    c = split_merge(x, [3, 4000, 997, 3000], [2, 0, 3, 1])
    whole = Accumulator(7)
    whole.add(x)
    assert a == b == c == whole.extract()  # every value, bit for bit


def test_quantile_error_is_relative_whatever_the_range():
    rng = np.random.default_rng(4)
    x = rng.normal(0.0, 0.01, (20_000, 1))
    x[7, 0] = 1e30  # one absurd value: the histogram's resolution must not follow the range
    acc = Accumulator(1)
    acc.add(x)
    stats = acc.extract()
    for key, q in (("q01", 0.01), ("q99", 0.99)):
        exact = np.quantile(x, q)
        assert abs(stats[key][0] - exact) <= REL_ERROR * abs(exact) * 1.0001, (key, stats[key][0], exact)
    assert stats["max"] == [1e30]


def test_buckets_are_ordered_and_hold_their_values():
    x = np.array([-3e5, -1.0, -1e-300, 0.0, 5e-324, 1e-12, 0.25, 1.0, 7.5, 1e300])
    k = bucket_keys(x)
    assert (np.diff(k) >= 0).all()
    mid = bucket_values(k)
    assert (np.abs(mid - x) <= REL_ERROR * np.abs(x) + MIN_MAGNITUDE).all()
    assert (k[np.abs(x) < MIN_MAGNITUDE] == 0).all() and (k[np.abs(x) >= MIN_MAGNITUDE] != 0).all()


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


def test_memory_is_bounded_by_the_buckets_of_the_range():
    def buckets(n):
        acc = Accumulator(7)
        for chunk in np.array_split(mixed_data(n), max(n // 100, 1)):
            acc.add(chunk)
        acc.flush()
        return [len(h.keys) for h in acc.hist]

    small, large = buckets(20_000), buckets(400_000)
    assert large[5] == small[5] == 1 and large[6] == small[6] == 2  # a constant and a 0/1 dimension
    # uniform on [-pi, pi]: at most 2^11 buckets per power of two and sign from 2^-40 up, however many values
    assert small[4] < large[4] <= 1 + 2 * 2048 * (2 + 40)


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


def partials(x, sizes, dataset):
    out = []
    for i, part in enumerate(np.split(x, np.cumsum(sizes)[:-1])):
        acc = DatasetStatistics()
        acc.add_episode(part[:, :7], part[:, 7:])
        out.append(((dataset, i % 3), Partial(acc.flush(), [{"dataset": dataset, "i": i}])))
    return out


@pytest.mark.parametrize("options", [[], ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]])
def test_beam_combine_equals_one_accumulator_bit_for_bit(options):
    rng = np.random.default_rng(0)
    data = {"a": rng.normal(size=(3000, 10)), "b": rng.standard_cauchy(size=(2000, 10))}
    sizes = {"a": [500] * 6, "b": [7, 993, 1000]}
    elements = partials(data["a"], sizes["a"], "a") + partials(data["b"], sizes["b"], "b")
    expected = {}
    for name, x in data.items():
        whole = DatasetStatistics()  # the same episodes, in order, into one accumulator
        for episode in np.split(x, np.cumsum(sizes[name])[:-1]):
            whole.add_episode(episode[:, :7], episode[:, 7:])
        expected[name] = whole.extract()

    def matches(actual):
        assert sorted(name for name, _ in actual) == ["a", "b"]
        for name, partial in actual:
            assert partial.acc.extract() == expected[name]
            assert len(partial.problems) == (6 if name == "a" else 3)

    with beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner", *options])) as p:
        assert_that(p | beam.Create(elements) | CombinePerDataset(DatasetStatistics), matches)
