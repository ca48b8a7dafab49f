"""A CombineFn over accumulators that know how to merge themselves (acc.merge(other) -> acc)."""
from __future__ import annotations

import apache_beam as beam


class MergingCombineFn(beam.CombineFn):
    def merge_accumulators(self, accumulators):
        accumulators = iter(accumulators)
        merged = next(accumulators)
        for acc in accumulators:
            merged.merge(acc)
        return merged
