"""Progress of the long stages: the DoFns' ticks reach the driver's bar when they run in its process
(a real statistics pipeline on the in-process DirectRunner), count on their own anywhere else, and the
driver's output is one line per interval without a terminal, a tqdm bar with a rate and ETA with one."""

import io
import os
import pickle

import pytest

from beam_jobs import progress
from beam_jobs.progress import Ticker, runs_in_process, stage_progress


def test_dofn_ticks_reach_the_driver_bar_on_the_in_process_runner(bridge_root, tmp_path, capfd, monkeypatch):
    from beam_jobs.collect import run_and_collect
    from beam_jobs.dataset_statistics import build_statistics
    from manifests.registry import load_registry
    from sources.episodes import plan_reads
    from sources.rlds import open_dataset

    monkeypatch.setattr(progress, "LINE_EVERY_S", 0.0)  # without a terminal: a line at every tick here
    configs = {"bridge_orig": load_registry().datasets["bridge_orig"]}
    tasks = plan_reads({"bridge_orig": open_dataset(str(bridge_root), configs["bridge_orig"])}, "train", None, 4)
    total = progress.total_episodes(tasks)
    assert total == 25 and len(tasks) > 1
    with stage_progress("stats", total, ["--runner=DirectRunner"]):
        bar = progress._ACTIVE["stats"]
        records = run_and_collect(lambda p: build_statistics(p, tasks, configs), ["--runner=DirectRunner"],
                                  str(tmp_path / "stats.pkl"), key=lambda r: r[0])  # fmt: skip
    assert "stats" not in progress._ACTIVE
    assert (bar.done, bar.steps) == (25, records[0][1]["num_transitions"]) == (25, 200)
    lines = [x for x in capfd.readouterr().err.splitlines() if x.startswith("stats: ")]
    assert len(lines) == len(tasks) and lines[-1].startswith("stats: 25/25 episodes (100%) in ")
    assert "episodes/s" in lines[-1] and "steps/s" in lines[-1]


def test_a_ticker_outside_the_driver_counts_for_its_worker_only(monkeypatch, capsys):
    monkeypatch.setattr(progress, "LINE_EVERY_S", 0.0)
    ticker = pickle.loads(pickle.dumps(Ticker("grids")))  # as a runner ships it with the DoFn
    with stage_progress("grids", 10, []):
        ticker.driver_pid = os.getpid() + 1  # what a worker process sees: another process's id
        ticker(3, 30)
        assert progress._ACTIVE["grids"].done == 0
    worker = progress._WORKER.pop("grids")
    assert (worker.done, worker.steps) == (3, 30)
    assert "grids [worker " in capsys.readouterr().err


def test_out_of_process_runners_say_where_progress_goes_or_poll(capsys, monkeypatch):
    assert runs_in_process([]) and runs_in_process(["--runner=DirectRunner", "--direct_running_mode=in_memory"])
    assert not runs_in_process(["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    assert not runs_in_process(["--runner=apache_beam.runners.dask.dask_runner.DaskRunner"])
    with stage_progress("stats", 10, ["--runner=PortableRunner"]):
        assert "stats" not in progress._ACTIVE
    assert "stats: the work runs in worker processes; each writes a progress line every 30s" in capsys.readouterr().err
    # a polled count (the export's part files) drives the bar instead
    monkeypatch.setattr(progress, "POLL_EVERY_S", 0.01)
    monkeypatch.setattr(progress, "LINE_EVERY_S", 0.0)
    done = iter(range(1, 1000))
    import time

    with stage_progress("export", 40, ["--runner=PortableRunner"], poll=lambda: min(next(done), 5), poll_total=5):
        time.sleep(0.3)
    err = capsys.readouterr().err
    assert "export: 5/5 tasks (100%)" in err and "worker processes" not in err


def test_on_a_terminal_a_bar_with_rate_and_time_left(monkeypatch):
    pytest.importorskip("tqdm")
    stream = io.StringIO()
    stream.isatty = lambda: True
    monkeypatch.setattr("sys.stderr", stream)
    ticker = Ticker("export")
    with stage_progress("export", 8, []):
        for _ in range(4):
            ticker(2, 50)
    text = stream.getvalue().replace("\r", "\n")
    last = [x for x in text.splitlines() if x.startswith("export:")][-1]
    assert "8/8" in last and "100%" in last and "episodes/s" in last and "steps/s" in last and "<00:00" in last
