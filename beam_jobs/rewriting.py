"""The re-export job: one element per shard, each rewritten by shards.rewrite (new tokens, new images)."""

from __future__ import annotations

import apache_beam as beam

from grids.grid import ActionGrid
from grids.tokenizer import ActionTokenizer
from shards.rewrite import rewrite_shard


class RewriteShardFn(beam.DoFn):
    def __init__(self, grid_json: dict | None):
        self.grid_json = grid_json

    def setup(self):
        self.encode = ActionTokenizer(ActionGrid.from_json(self.grid_json)).encode if self.grid_json else None

    def process(self, job: dict):
        yield rewrite_shard(job, self.encode)


class RewriteShards(beam.PTransform):
    def __init__(self, jobs: list[dict], grid_json: dict | None):
        super().__init__()
        self.jobs, self.grid_json = jobs, grid_json

    def expand(self, pbegin):
        return (
            pbegin
            | "Shards" >> beam.Create(self.jobs)
            | "Spread" >> beam.Reshuffle()
            | "Rewrite" >> beam.ParDo(RewriteShardFn(self.grid_json))
        )
