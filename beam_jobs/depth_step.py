"""The depth step: an encoded task's episodes -> the same episodes with a `depth` column.

Frames are batched inside the element (a task's episodes), never across elements, so every
runner computes the same batches. The step carries an accelerator resource hint, so a runner
that honours hints (Dataflow) places it on GPU workers while reading and encoding stay on CPU
workers; the Direct and Dask runners ignore it. The model is loaded once per worker process.
"""

from __future__ import annotations

import apache_beam as beam
import numpy as np

from beam_jobs.progress import Ticker
from beam_jobs.shard_writing import EncodedTask
from depth.codec import depth_to_uint16_mm, encode_depth

DEFAULT_ACCELERATOR = "type:nvidia-tesla-t4;count:1;install-nvidia-driver"
_ESTIMATORS: dict = {}  # (model_dir, backend) -> DepthEstimator, shared by the bundles of a process


def estimator(model_dir: str | None, backend: str):
    if (model_dir, backend) not in _ESTIMATORS:
        from depth.model import DepthEstimator  # torch and transformers load on the workers that run depth

        _ESTIMATORS[(model_dir, backend)] = DepthEstimator.load(model_dir, backend=backend)
    return _ESTIMATORS[(model_dir, backend)]


class TaskDepthFn(beam.DoFn):
    def __init__(self, model_dir: str | None, backend: str, frames_per_batch: int):
        self.model_dir, self.backend, self.frames_per_batch = model_dir, backend, frames_per_batch
        self.ticker = Ticker("depth")

    def process(self, encoded: EncodedTask):
        if encoded.episodes and not encoded.from_cache:  # cached frames come with their depth
            if not hasattr(self, "estimator"):  # loaded by the first task that needs it, not by a cached run
                self.estimator = estimator(self.model_dir, self.backend)
            pixels = np.concatenate([e.pixels for e in encoded.episodes])  # decoded once, by the encode step
            b = self.frames_per_batch
            depth = np.concatenate([self.estimator.predict(pixels[i : i + b]) for i in range(0, len(pixels), b)])
            start = 0
            for e in encoded.episodes:
                t = e.num_steps
                e.columns["depth"] = [encode_depth(d) for d in depth_to_uint16_mm(depth[start : start + t])]
                e.pixels = None
                start += t
        self.ticker(len(encoded.episodes), sum(e.num_steps for e in encoded.episodes))
        yield encoded


def with_depth(encoded, model_dir: str | None, backend: str = "transformers", frames_per_batch: int = 32,
               accelerator: str = DEFAULT_ACCELERATOR):  # fmt: skip
    """PCollection[EncodedTask] -> the same with depth, on accelerator workers where the runner can."""
    fn = TaskDepthFn(model_dir, backend, frames_per_batch)
    return encoded | "ZoeDepth" >> beam.ParDo(fn).with_resource_hints(accelerator=accelerator)
