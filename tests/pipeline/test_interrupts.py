"""Ctrl-C (SIGINT to the whole process group, as a terminal sends it) and SIGTERM mid-export: one
line, exit 130, no traceback from the driver or from the processes it started, nothing left
running; the same command then resumes to the bytes of an uninterrupted run."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT
from tests.pipeline.test_end_to_end import file_hashes

pytestmark = pytest.mark.slow  # end-to-end runs of the job

DATASETS = "kuka=1,roboturk=1,toto=1,berkeley_autolab_ur5=1"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "SPATIAL_PIPELINE_TASK_EPISODES": "1"}  # a task per episode


def command(data, out, *extra):
    return [sys.executable, "-m", "pipeline.run", "--datasets", DATASETS, "--data-dir", str(data), "--out", str(out),
            "--no-depth", "--image-size", "224", "--split", "train+val", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def reference(sample_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("interrupts") / "reference"
    subprocess.run(command(sample_corpus, out), env=ENV, cwd=ROOT, check=True, capture_output=True, timeout=600)
    return file_hashes(out)


@pytest.mark.parametrize("sig, to_group, extra", [
    # Ctrl-C in a terminal reaches the worker processes too: they must not print their own tracebacks
    (signal.SIGINT, True, ["--", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]),
    (signal.SIGTERM, False, []),  # the default in-process runner
])  # fmt: skip
def test_an_interrupt_is_one_line_and_the_same_command_resumes(sample_corpus, reference, tmp_path, sig, to_group,
                                                                extra):  # fmt: skip
    out = tmp_path / "out"
    cmd = command(sample_corpus, out, *extra)
    proc = subprocess.Popen(cmd, env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if len(list(out.glob(".work/export/*/*.json"))) >= 3:
                os.killpg(proc.pid, sig) if to_group else proc.send_signal(sig)
                break
            time.sleep(0.02)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err[-3000:]
    assert not (out / "manifest.json").exists(), "the export finished before it could be interrupted"
    last = err.strip().splitlines()[-1]
    m = re.fullmatch(r"interrupted: (\d+) of 12 tasks kept; run the same command to resume", last)
    assert m, err[-3000:]
    kept = int(m.group(1))
    assert kept == len(list(out.glob(".work/export/*/*.json"))) and kept >= 3
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    assert not (out / ".lock").exists()
    time.sleep(1)
    left = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert not left, f"processes of the interrupted run still alive: {left}"

    again = subprocess.run(cmd, env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming an interrupted run: {kept} of 12 task(s) already encoded are reused" in again.stderr
    assert file_hashes(out) == reference
