"""The engine that runs the jobs: Beam pipeline options from the command line, and a dask cluster
when one is asked for and none is given.

    --runner direct   Beam's DirectRunner (default); `-- --direct_running_mode=multi_processing
                      --direct_num_workers=N` for local processes
    --runner dask     Beam's DaskRunner on dask.distributed (with a group-by whose cost stays linear:
                      beam_jobs/dask_runner.py): the scheduler at --dask-address
                      (tcp://HOST:8786, started with `dask scheduler` / `dask worker`), or a
                      cluster of --workers local processes started here and stopped at the end
    -- <Beam options> passed through, e.g. --runner=PortableRunner --job_endpoint=HOST:8099

What some runners need is added here: the DaskRunner packs up to 128 elements into one partition
unless told otherwise, so each read task gets a partition of its own (--dask_partition_size=1)
and the work spreads over the workers; the DirectRunner's local worker processes (multi_processing)
log at ERROR only, since they write into the run's own terminal.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

DASK_RUNNER = "beam_jobs.dask_runner.BoundedShuffleDaskRunner"  # Beam finds a runner outside its own by full name


def _runner_of(beam_args: Sequence[str]) -> str:
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    return str(PipelineOptions(list(beam_args)).view_as(StandardOptions).runner or "DirectRunner")


def with_runner_defaults(beam_args: Sequence[str]) -> list[str]:
    args = list(beam_args) or ["--runner=DirectRunner"]
    if _runner_of(args).endswith("DaskRunner") and not any(
        a.startswith(("--dask_partition_size", "--dask_npartitions")) for a in args
    ):
        args.append("--dask_partition_size=1")
    if "--direct_running_mode=multi_processing" in args and not any(
        a.startswith("--default_sdk_harness_log_level") for a in args
    ):  # the local worker processes write to the run's terminal: their INFO lines about channels are noise
        args.append("--default_sdk_harness_log_level=ERROR")
    return args


@contextlib.contextmanager
def engine(runner: str, beam_args: Sequence[str], dask_address: str | None = None,
           workers: int | None = None) -> Iterator[list[str]]:  # fmt: skip
    """The Beam options every pipeline of a run gets, with a local dask cluster alive meanwhile
    when --runner dask has no --dask-address."""
    args = list(beam_args)
    if runner != "dask":
        yield with_runner_defaults(args)
        return
    args.append(f"--runner={DASK_RUNNER}")
    if dask_address:
        yield with_runner_defaults([*args, f"--dask_client_address={dask_address}"])
        return
    with local_cluster(workers) as address:
        yield with_runner_defaults([*args, f"--dask_client_address={address}"])


@contextlib.contextmanager
def local_cluster(workers: int | None = None) -> Iterator[str]:
    """A dask.distributed cluster of single-threaded worker processes on 127.0.0.1: its address."""
    import os

    import dask
    from distributed import LocalCluster

    # dask's nannies set MALLOC_TRIM_THRESHOLD_ in their workers, which turns off glibc's adaptive
    # mmap threshold: every frame buffer is then mapped and unmapped, and encoding runs ~1.5x slower.
    # A worker's statistical profiler samples the task thread's stack 100 times a second for the
    # dashboard, which this cluster does not serve: off
    settings = {
        "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
        "distributed.worker.profile.enabled": False,
    }
    with (
        dask.config.set(settings),
        LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                     host="127.0.0.1", dashboard_address=None) as cluster,
    ):  # fmt: skip
        yield cluster.scheduler_address
