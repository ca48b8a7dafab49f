"""Running a pipeline and bringing its results back to the driver.

Every pipeline here is one chain that ends in one sink, Collect: all elements of the last
PCollection go into one file (pickled, sorted by a key, so it does not depend on bundling),
which the driver reads back. The DaskRunner computes only a pipeline's last step and opens a
client per pipeline; run_and_collect closes it.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence

import apache_beam as beam

from storage import files


class PipelineFailed(RuntimeError):
    """The runner reported a state other than DONE."""


def _write(group: tuple, path: str, key) -> int:
    records = sorted(group[1], key=key)
    files.write_bytes(path, pickle.dumps(records, protocol=5))
    return len(records)


def read_collected(path: str) -> list:
    """What Collect wrote; [] when the pipeline had nothing to collect."""
    return pickle.loads(files.read_bytes(path)) if files.exists(path) else []


class Collect(beam.PTransform):
    """PCollection -> the file `path` (read back with read_collected)."""

    def __init__(self, path: str, key: Callable):
        super().__init__()
        self.path, self.key = path, key

    def expand(self, pcoll):
        return (
            pcoll
            | "Keyed" >> beam.Map(lambda x: (None, x))
            | "Gather" >> beam.GroupByKey()
            | "Write" >> beam.Map(_write, self.path, self.key)
        )


def run_and_collect(build: Callable[[beam.Pipeline], beam.PCollection], beam_args: Sequence[str], path: str,
                    key: Callable) -> list:  # fmt: skip
    """Build a pipeline (build(p) returns its last PCollection), run it under beam_args, and return
    the last PCollection's elements sorted by key."""
    from apache_beam.options.pipeline_options import PipelineOptions

    files.remove(path)  # a previous run's results must not pass for this one's
    p = beam.Pipeline(options=PipelineOptions(list(beam_args) or ["--runner=DirectRunner"]))
    build(p) | "Collect" >> Collect(path, key)
    result = p.run()
    try:
        state = result.wait_until_finish()
    finally:
        client = getattr(result, "client", None)  # DaskRunner: one client per pipeline, never closed by it
        if client is not None:
            client.close()
    if state not in (None, "DONE"):
        raise PipelineFailed(f"the Beam pipeline ended in state {state}")
    return read_collected(path)
