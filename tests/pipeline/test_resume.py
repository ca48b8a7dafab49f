"""A run killed (SIGKILL) during export, run again: finished work reused, output identical."""

import os
import signal
import subprocess
import sys
import time

import pytest

from pipeline.report import output_digests as hashes
from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # end-to-end runs of the job

DATASETS = "kuka=1,roboturk=1,berkeley_autolab_ur5=1,toto=1,ucsd_kitchen_dataset_converted_externally_to_rlds=1"


def command(data, out):
    return [
        sys.executable,
        "-m",
        "pipeline.run",
        "--datasets",
        DATASETS,
        "--data-dir",
        str(data),
        "--out",
        str(out),
        "--no-depth",
        "--image-size",
        "224",
        "--split",
        "train+val",
    ]


def test_killed_export_resumes_to_identical_output(sample_corpus, tmp_path):
    env = {**os.environ, "SPATIAL_PIPELINE_TASK_EPISODES": "1", "PYTHONPATH": str(ROOT)}  # a part per episode
    reference = tmp_path / "reference"
    subprocess.run(command(sample_corpus, reference), env=env, cwd=ROOT, check=True, capture_output=True)

    out = tmp_path / "killed"
    proc = subprocess.Popen(
        command(sample_corpus, out), env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    parts = []
    while time.time() < deadline and proc.poll() is None:
        parts = list((out / ".work" / "export").glob("*/*.json")) if (out / ".work" / "export").exists() else []
        if len(parts) >= 3:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the export finished before it could be killed"
    assert not (out / "manifest.json").exists()

    again = subprocess.run(command(sample_corpus, out), env=env, cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "statistics read from the cache" in again.stderr
    assert "resuming an interrupted run" in again.stderr and "already encoded are reused" in again.stderr
    assert hashes(out) == hashes(reference)
