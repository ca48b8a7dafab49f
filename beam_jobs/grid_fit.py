"""The grid fit's Beam combine: normalized actions of the whole mixture -> one FitAccumulator."""
from __future__ import annotations

from beam_jobs.combine import MergingCombineFn
from grids.fit import FitAccumulator


class GridFitFn(MergingCombineFn):
    """Input: (episode_id, normalized actions [T, 7], weight per step)."""

    def create_accumulator(self):
        return FitAccumulator()

    def add_input(self, acc, item):
        episode_id, actions, step_weight = item
        return acc.add(actions, step_weight, episode_id)

    def extract_output(self, acc):
        return acc
