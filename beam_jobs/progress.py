"""Progress of the long stages (statistics, grid fit, export, depth): what the driver shows.

The driver opens a stage's progress around its pipeline (`stage_progress`); the stage's DoFns hold
a `Ticker` and call it once per read task with the episodes and steps done. Where the DoFns run
decides what can be shown:

- in the driver's process (the DirectRunner in-process: the default): the ticks reach the driver's
  bar directly. On a terminal a tqdm bar with rate and time left; otherwise (a log file, CI) quiet:
  a line every 30 s while the stage runs.
- in other processes (multi-process DirectRunner, Dask, portable runners, Dataflow): the driver
  sees no ticks. It says so once, shows how long the stage has run, and where it can count finished
  work (the export's part files, on shared storage) it counts that. Each worker process writes its
  own progress line every 30 s to its stderr (its log).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence

LINE_EVERY_S = 30.0  # without a terminal: one line per stage, and one every this many seconds
POLL_EVERY_S = 2.0

_ACTIVE: dict[str, _Bar] = {}  # stage -> the driver's bar while the stage runs
_WORKER: dict[str, _Lines] = {}  # stage -> this worker process's own counts (outside the driver)
_LOCK = threading.Lock()


def interactive() -> bool:
    return sys.stderr.isatty()


def runs_in_process(beam_args: Sequence[str]) -> bool:
    """Whether the DoFns of a pipeline under these options run in this (the driver's) process."""
    runner, mode = "DirectRunner", "in_memory"
    for a in beam_args:
        if a.startswith("--runner="):
            runner = a.split("=", 1)[1]
        elif a.startswith("--direct_running_mode="):
            mode = a.split("=", 1)[1]
    return runner in ("DirectRunner", "direct", "BundleBasedDirectRunner") and mode != "multi_processing"


def rate_text(done: int, steps: int, seconds: float, unit: str) -> str:
    s = max(seconds, 1e-9)
    return f"{done / s:.1f} {unit}/s, {steps / s:,.0f} steps/s"


class _Lines:
    """Counts, and a line to stderr every LINE_EVERY_S seconds (a worker's log, or a driver without a terminal)."""

    def __init__(self, label: str, total: int, unit: str):
        self.label, self.total, self.unit = label, total, unit
        self.start = self.last = time.monotonic()
        self.done = self.steps = 0

    def update(self, n: int, steps: int) -> None:
        self.done += n
        self.steps += steps
        now = time.monotonic()
        if now - self.last >= LINE_EVERY_S:
            self.last = now
            print(self.line(now), file=sys.stderr, flush=True)

    def line(self, now: float | None = None) -> str:
        elapsed = (now or time.monotonic()) - self.start
        text = f"{self.label}: {self.done:,}"
        if self.total:
            text += f"/{self.total:,} {self.unit} ({100 * self.done / self.total:.0f}%)"
        else:
            text += f" {self.unit}"
        text += f" in {elapsed:.0f}s, {rate_text(self.done, self.steps, elapsed, self.unit)}"
        if self.total and self.done:
            text += f", ~{(self.total - self.done) * elapsed / self.done:.0f}s left"
        return text

    def close(self) -> None:
        pass


class _Bar(_Lines):
    """The driver's view of a stage: a tqdm bar on a terminal, else _Lines."""

    def __init__(self, label: str, total: int, unit: str):
        super().__init__(label, total, unit)
        self.tqdm = None
        if interactive():
            from tqdm import tqdm

            self.tqdm = tqdm(total=total or None, desc=label, unit=f" {unit}", unit_scale=False, file=sys.stderr,
                             dynamic_ncols=True, mininterval=0.5, smoothing=0.1, leave=True)  # fmt: skip

    def update(self, n: int, steps: int) -> None:
        with _LOCK:
            if self.tqdm is None:
                return super().update(n, steps)
            self.done += n
            self.steps += steps
            elapsed = max(time.monotonic() - self.start, 1e-9)
            self.tqdm.set_postfix_str(f"{self.steps / elapsed:,.0f} steps/s", refresh=False)
            self.tqdm.update(n)

    def set_done(self, done: int) -> None:
        """For a polled count (finished work found on storage): set, not add."""
        self.update(done - self.done, 0)

    def close(self) -> None:
        if self.tqdm is not None:
            self.tqdm.close()


class Ticker:
    """Held by a DoFn; called with the episodes and steps it finished. Picklable: it carries the
    driver's process id, so that in the driver it feeds the driver's bar and anywhere else the
    worker's own lines."""

    def __init__(self, stage: str, unit: str = "episodes"):
        self.stage, self.unit = stage, unit
        self.driver_pid = os.getpid()

    def __call__(self, n: int, steps: int) -> None:
        if os.getpid() == self.driver_pid:
            bar = _ACTIVE.get(self.stage)
            if bar is not None:
                bar.update(n, steps)
                return
        with _LOCK:
            lines = _WORKER.get(self.stage)
            if lines is None:
                lines = _WORKER[self.stage] = _Lines(
                    f"{self.stage} [worker {socket.gethostname()}:{os.getpid()}]", 0, self.unit
                )
        lines.update(n, steps)


@contextlib.contextmanager
def stage_progress(stage: str, total: int, beam_args: Sequence[str], unit: str = "episodes",
                   poll: Callable[[], int] | None = None, poll_unit: str = "tasks",
                   poll_total: int = 0) -> Iterator[None]:  # fmt: skip
    """The driver's progress of one stage while its pipeline runs. Out of process, `poll` (a count of
    finished work the driver can see, e.g. part files written) drives the bar instead of the ticks."""
    in_process = runs_in_process(beam_args)
    if not in_process and poll is None:
        print(f"{stage}: the work runs in worker processes; each writes a progress line every "
              f"{LINE_EVERY_S:.0f}s to its own log", file=sys.stderr, flush=True)  # fmt: skip
    bar = _Bar(stage, total if in_process else poll_total, unit if in_process else poll_unit)
    stop = threading.Event()
    poller = None
    if in_process:
        _ACTIVE[stage] = bar
    elif poll is not None:

        def run():
            while not stop.wait(POLL_EVERY_S):
                with contextlib.suppress(Exception):  # storage that cannot be listed now: try again later
                    bar.set_done(poll())

        poller = threading.Thread(target=run, name=f"progress-{stage}", daemon=True)
        poller.start()
    try:
        yield
    finally:
        stop.set()
        if poller is not None:
            poller.join(timeout=POLL_EVERY_S + 1)
        _ACTIVE.pop(stage, None)
        bar.close()


def total_episodes(tasks) -> int:
    return sum(t.shard.num_episodes for t in tasks)
