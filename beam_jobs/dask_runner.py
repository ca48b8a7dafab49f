"""Beam's DaskRunner with a group-by-key whose cost grows linearly with the elements it groups,
and whose workers do not keep every output of a ParDo until the pipeline ends.

Beam's DaskRunner turns every GroupByKey into dask.bag's task-based shuffle over all partitions
of its input, and each read task is a partition of its own (beam_jobs.engine): for n partitions
that is about n * (n + 2) tasks up to 32, 2 * n * (sqrt(n) + 2) up to 1,024, 3 * n * (n^(1/3) + 2)
beyond. Measured on a 2-worker local cluster, grouping n tiny elements cost 0.3 CPU-seconds at
n = 12, 7.5 at n = 192 and 47 at n = 768, and a statistics job has three such group-bys; at
OXE's ~125,000 export tasks the shuffle alone would be ~10 million tasks.

Here a group-by first concatenates the n partitions into ceil(sqrt(n)) (about sqrt(n) elements
each, the bound per group the two-level combine of beam_jobs/combines.py is built around),
then shuffles those: O(n) tasks in all. The values of a key come out in another order, which
nothing here depends on (combines merge exactly, Collect sorts).

Beam's ParDo translation passes the output receivers to each task as one of its arguments, and
the DoFn's outputs are appended to them: a dask worker keeps a task's arguments until the task is
forgotten, which for a task whose result waits for a group-by is the end of the pipeline. Every
EncodedTask (a task's frames) stayed alive that way: a worker's RSS grew by ~1 MB per export task
(+130 MB over 96 tasks of the 16x sample corpus, measured with gc; at OXE scale, without bound).
Here each task makes its own receivers. Everything else is Beam's DaskRunner as it is.
"""

from __future__ import annotations

import math

import apache_beam as beam
import dask
from apache_beam.runners.common import DoFnContext, DoFnSignature, _OutputHandler
from apache_beam.runners.dask import dask_runner
from apache_beam.runners.dask.overrides import _GroupByKeyOnly
from apache_beam.runners.dask.transform_evaluator import (
    GroupByKey,
    OneReceiver,
    ParDo,
    apply_dofn_to_bundle,
    get_windowed_value,
)


def shuffle_partitions(n: int) -> int:
    """How many partitions a group-by over n partitions shuffles: ceil(sqrt(n))."""
    return math.isqrt(max(n, 1) - 1) + 1


def run_bundle(items, signature, window_fn, invoker_kwargs) -> list:
    """Beam's apply_dofn_to_bundle on one partition, with receivers of this call's own."""
    receivers = OneReceiver()
    handler = _OutputHandler(
        window_fn=window_fn,
        main_receivers=receivers[None],
        tagged_receivers=receivers,
        per_element_output_counter=None,
        output_batch_converter=None,
        process_yields_batches=False,
        process_batch_yields_elements=False,
    )
    return apply_dofn_to_bundle(items, [signature, handler], invoker_kwargs, receivers)


class ParDoOwnReceivers(ParDo):
    """Beam's ParDo translation (no side inputs), with the receivers made in the task."""

    def apply(self, input_bag, side_inputs=None):
        transform = self.transform
        args, kwargs = transform.raw_side_inputs
        main_input = next(iter(self.applied.main_inputs.values()))
        window_fn = main_input.windowing.windowfn if hasattr(main_input, "windowing") else None
        invoker_kwargs = dict(
            context=DoFnContext(transform.label, state=None),
            side_inputs=side_inputs,
            input_args=list(args),
            input_kwargs=kwargs,
            user_state_context=None,
            bundle_finalizer_param=beam.DoFn.BundleFinalizerParam(),
        )
        return input_bag.map(get_windowed_value, window_fn).map_partitions(
            run_bundle, DoFnSignature(transform.fn), window_fn, invoker_kwargs
        )


class BoundedShuffleDaskRunner(dask_runner.DaskRunner):
    """DaskRunner whose GroupByKey shuffles ceil(sqrt(n)) partitions instead of n, and whose ParDo
    tasks keep no outputs in their arguments."""

    @staticmethod
    def to_dask_bag_visitor(bag_kwargs=None, lazy_side_inputs: bool = False):
        visitor = dask_runner.DaskRunner.to_dask_bag_visitor(bag_kwargs, lazy_side_inputs)
        translate = visitor.visit_transform

        def visit_transform(node) -> None:
            kwargs = dict(bag_kwargs or {})
            if isinstance(node.transform, _GroupByKeyOnly):
                (pcoll,) = node.inputs
                bag = visitor.bags[pcoll.producer]
                fewer = bag.repartition(npartitions=min(bag.npartitions, shuffle_partitions(bag.npartitions)))
                visitor.bags[node] = GroupByKey(node, bag_kwargs=kwargs).apply(fewer)
            elif node.transform.__class__ is beam.ParDo and not node.side_inputs:  # what Beam translates as ParDo
                (pcoll,) = node.inputs
                visitor.bags[node] = ParDoOwnReceivers(node, bag_kwargs=kwargs).apply(visitor.bags[pcoll.producer])
            else:
                translate(node)

        visitor.visit_transform = visit_transform
        return visitor

    def run_pipeline(self, pipeline, options):
        # the shuffle dask.bag would pick anyway with a client; naming it spares importing
        # dask.dataframe and pandas into the driver only to find that out
        with dask.config.set({"dataframe.shuffle.method": "tasks"}):
            return super().run_pipeline(pipeline, options)
