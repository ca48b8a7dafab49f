"""The depth step: batches of encoded episodes -> the same episodes with a `depth` column.

It carries an accelerator resource hint, so a runner that honours hints (Dataflow) places
it on GPU workers while reading and encoding stay on CPU workers; the DirectRunner ignores it.
"""

from __future__ import annotations

import apache_beam as beam
import numpy as np

from depth.codec import depth_to_uint16_mm, encode_depth

DEFAULT_ACCELERATOR = "type:nvidia-tesla-t4;count:1;install-nvidia-driver"


class EpisodeDepthFn(beam.DoFn):
    def __init__(self, model_dir: str | None, backend: str, frames_per_batch: int):
        self.model_dir, self.backend, self.frames_per_batch = model_dir, backend, frames_per_batch
        self.frames = beam.metrics.Metrics.counter("depth", "frames")

    def setup(self):
        from depth.model import DepthEstimator  # torch and transformers load on the workers that run depth

        self.estimator = DepthEstimator.load(self.model_dir, backend=self.backend)

    def process(self, episodes):
        pixels = np.concatenate([e.pixels for e in episodes])  # decoded once, by the encode step
        depth = np.concatenate(
            [
                self.estimator.predict(pixels[i : i + self.frames_per_batch])
                for i in range(0, len(pixels), self.frames_per_batch)
            ]
        )
        self.frames.inc(len(pixels))
        start = 0
        for e in episodes:
            t = e.num_steps
            e.columns["depth"] = [encode_depth(d) for d in depth_to_uint16_mm(depth[start : start + t])]
            e.pixels = None
            start += t
            yield e


class EpisodeDepth(beam.PTransform):
    def __init__(
        self,
        model_dir: str | None,
        backend: str = "transformers",
        frames_per_batch: int = 32,
        max_episodes_per_batch: int = 8,
        accelerator: str = DEFAULT_ACCELERATOR,
    ):
        super().__init__()
        self.fn = EpisodeDepthFn(model_dir, backend, frames_per_batch)
        self.max_episodes, self.accelerator = max_episodes_per_batch, accelerator

    def expand(self, encoded):
        return (
            encoded
            | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=self.max_episodes)
            | "ZoeDepth" >> beam.ParDo(self.fn).with_resource_hints(accelerator=self.accelerator)
        )
