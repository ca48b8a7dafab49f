"""Combining partial results of read tasks: per dataset, in two levels.

A Partial is what one task contributes (an accumulator that merges itself, and the problems the
task met). Accumulators here merge exactly, so the combined result has the same bits however a
runner groups, orders or retries the work. Two levels (per (dataset, group), then per dataset)
bound what one worker holds where a runner gathers a key's values before combining them (the
DaskRunner does); runners with combiner lifting (Direct, Dataflow, Flink) lose nothing by it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import apache_beam as beam


@dataclass
class Partial:
    acc: object  # has .merge(other) -> itself
    problems: list[dict] = field(default_factory=list)

    def merge(self, other: Partial) -> Partial:
        self.acc.merge(other.acc)
        self.problems += other.problems
        return self


class MergeFn(beam.CombineFn):
    """Partials -> their merge (a fresh accumulator: inputs are never modified)."""

    def __init__(self, empty: Callable[[], object]):
        self.empty = empty

    def create_accumulator(self):
        return Partial(self.empty())

    def add_input(self, acc: Partial, partial: Partial) -> Partial:
        return acc.merge(partial)

    def merge_accumulators(self, accs):
        accs = iter(accs)
        merged = next(accs)
        for a in accs:
            merged.merge(a)
        return merged

    def extract_output(self, acc: Partial) -> Partial:
        return acc


def groups_for(tasks_per_dataset: dict[str, int]) -> dict[str, int]:
    """How many first-level groups each dataset's tasks are dealt into: about sqrt(tasks)."""
    return {name: max(1, math.isqrt(n)) for name, n in tasks_per_dataset.items()}


class CombinePerDataset(beam.PTransform):
    """((dataset, group), Partial) -> (dataset, Partial), in two levels."""

    def __init__(self, empty: Callable[[], object]):
        super().__init__()
        self.empty = empty

    def expand(self, pcoll):
        return (
            pcoll
            | "PerGroup" >> beam.CombinePerKey(MergeFn(self.empty))
            | "DropGroup" >> beam.MapTuple(lambda key, partial: (key[0], partial))
            | "PerDataset" >> beam.CombinePerKey(MergeFn(self.empty))
        )


def grouped_tasks(p: beam.Pipeline, tasks: list) -> beam.PCollection:
    """PBegin -> (group, task) per read task, spread over the workers; groups as groups_for."""
    counts: dict[str, int] = {}
    for t in tasks:
        counts[t.dataset] = counts.get(t.dataset, 0) + 1
    groups, seen = groups_for(counts), dict.fromkeys(counts, 0)
    elements = []
    for t in tasks:
        elements.append((seen[t.dataset] % groups[t.dataset], t))
        seen[t.dataset] += 1
    return p | "Tasks" >> beam.Create(elements) | "Spread" >> beam.Reshuffle()
