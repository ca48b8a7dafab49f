"""Cost that grows linearly with the work and memory that does not: the dask engine's group-by and
ParDo tasks, and the scaled corpora that bench.scale measures them on.

Beam's DaskRunner shuffles a GroupByKey over every partition of its input (one per read task),
with a task count that grows like n^1.5 and faster; BoundedShuffleDaskRunner first concatenates
the partitions into ceil(sqrt(n)). Counted here on the dask graphs both runners build for the
same pipeline, and run on a local cluster against the answer computed by hand. Beam's ParDo
translation makes the output receivers task arguments, which a worker keeps as long as the task:
here every task makes its own, and none of its outputs stay behind."""

import os
import shutil

import apache_beam as beam
import dask
import pytest
from apache_beam.runners.dask.dask_runner import DaskRunner
from apache_beam.runners.dask.overrides import dask_overrides

from beam_jobs.dask_runner import BoundedShuffleDaskRunner, shuffle_partitions
from beam_jobs.engine import DASK_RUNNER
from bench.scale import scaled_corpus
from sources.rlds import RLDSDataset


def graph_tasks(runner_cls, n: int) -> int:
    """Tasks of the dask graph a runner builds for: n elements -> keyed -> GroupByKey -> sum per key."""
    p = beam.Pipeline()
    _ = (
        p
        | beam.Create(range(n))
        | beam.Map(lambda x: (x % 3, x))
        | beam.GroupByKey()
        | beam.MapTuple(lambda k, vs: (k, sum(vs)))
    )
    with dask.config.set({"dataframe.shuffle.method": "tasks"}):  # what a run with a client picks
        p.replace_all(dask_overrides())
        visitor = runner_cls.to_dask_bag_visitor({"partition_size": 1})
        p.visit(visitor)
        return len(dict(list(visitor.bags.values())[-1].__dask_graph__()))


def held_outputs(runner_cls) -> tuple[list, int]:
    """(what n=4 elements -> ParDo -> Map compute to on dask's in-process scheduler, how many of the
    ParDo's outputs the graph's task arguments still hold afterwards)."""
    import gc

    from apache_beam.runners.dask.transform_evaluator import OneReceiver

    class Frames(beam.DoFn):
        def process(self, x):
            yield bytes(1000 + x)  # stands for a task's encoded frames

    p = beam.Pipeline()
    _ = p | beam.Create(range(4)) | beam.ParDo(Frames()) | beam.Map(len)
    with dask.config.set({"dataframe.shuffle.method": "tasks"}):
        p.replace_all(dask_overrides())
        visitor = runner_cls.to_dask_bag_visitor({"partition_size": 1})
        p.visit(visitor)
    bag = list(visitor.bags.values())[-1]
    result = sorted(bag.compute(scheduler="sync"))
    # type(), not isinstance: isinstance reads __class__, which deprecated proxies (torch's) warn on
    held = sum(len(o.values) for o in gc.get_objects() if type(o) is OneReceiver)
    del bag, visitor
    return result, held


def test_pardo_tasks_keep_no_outputs_in_their_arguments():
    result, held = held_outputs(BoundedShuffleDaskRunner)
    assert result == [1000, 1001, 1002, 1003] and held == 0
    _, held_by_beam = held_outputs(DaskRunner)  # Beam's translation: the receivers are task arguments
    assert held_by_beam >= 4


def test_shuffle_partitions_is_the_ceiling_of_the_square_root():
    assert [shuffle_partitions(n) for n in (1, 2, 4, 5, 12, 192, 1024, 125_000)] == [1, 2, 2, 3, 4, 14, 32, 354]


def test_group_by_tasks_grow_linearly_where_the_stock_runner_grows_faster():
    sizes = (48, 192, 768)
    bounded = [graph_tasks(BoundedShuffleDaskRunner, n) for n in sizes]
    stock = [graph_tasks(DaskRunner, n) for n in sizes]
    for n, b, s in zip(sizes, bounded, stock):
        assert b < s, (n, b, s)
        assert b <= 8 * n, f"{b} tasks for {n} elements"  # linear: a few tasks per element
    # 4x the elements: at most ~4x the tasks here, well over 4x (4^1.5 = 8 asymptotically) in the stock runner
    assert bounded[2] / bounded[1] < 4.5 and bounded[1] / bounded[0] < 4.5, bounded
    assert stock[2] / stock[1] > 6, stock


@pytest.mark.slow
def test_bounded_group_by_on_a_local_cluster_gives_every_value_once(tmp_path):
    from beam_jobs.collect import run_and_collect
    from beam_jobs.engine import engine

    n = 150
    expected = [(k, [x for x in range(n) if x % 7 == k]) for k in range(7)]
    with engine("dask", [], workers=2) as args:
        assert f"--runner={DASK_RUNNER}" in args and "--dask_partition_size=1" in args  # a partition per element
        got = run_and_collect(
            lambda p: (
                p
                | beam.Create(range(n))
                | beam.Map(lambda x: (x % 7, x))
                | beam.GroupByKey()
                | beam.MapTuple(lambda k, vs: (k, sorted(vs)))
            ),
            args,
            str(tmp_path / "grouped.pkl"),
            key=lambda r: r[0],
        )
    assert got == expected


def test_scaled_corpus_lists_every_train_shard_k_times_as_hard_links(bridge_root, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(bridge_root, base)
    out = scaled_corpus(base, 3, tmp_path / "x3")
    src, dst = (RLDSDataset(str(root / "bridge_dataset" / "1.0.0")) for root in (base, out))
    assert dst.splits == {"train": 3 * src.splits["train"], "val": src.splits["val"]}
    ((original, _),) = src.shard_files("train")
    copies = dst.shard_files("train")
    assert len(copies) == 3 and all(os.stat(p).st_ino == os.stat(original).st_ino for p, _ in copies)
    ids = [ep.episode_id for ep in dst.episodes("train", keys=["language_instruction"])]
    assert len(ids) == len(set(ids)) == 3 * src.splits["train"]  # the same episodes under 3 file names
    assert scaled_corpus(base, 3, tmp_path / "x3") == out  # built once
