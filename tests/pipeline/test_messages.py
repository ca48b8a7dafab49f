"""What the run says about itself: no noise, each default once in --help, plurals right, kept problems
named as kept, a --split error that points at --split."""

import os
import re
import subprocess
import sys

import pytest

from pipeline.report import Report, plural
from tests.conftest import ROOT

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def test_help_states_each_default_once():
    r = cli("pipeline.run", "--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())  # argparse wraps lines
    assert "(default: None)" not in text
    assert not re.search(r"default[^()]*\)\s*\(default", text)
    for stated in ("(default: ./output/<mixture>)", "train+val (default: train)", "(default: 224)",
                   "(default: bounds_q99)", "(default: 256)", "(default: direct)", "(default: all)"):  # fmt: skip
        assert text.count(stated) == 1, stated


def test_a_split_error_points_at_split(bridge_root, tmp_path):
    r = cli("pipeline.run", "--mixture", "bridge", "--data-dir", str(bridge_root), "--split", "tran",
            "--out", str(tmp_path / "out"))  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == (
        "error: dataset 'bridge_orig': no split 'tran' (has: train, val); give a --split it has"
    )
    assert not (tmp_path / "out").exists()


def test_summary_names_kept_problems_and_counts_in_words():
    assert plural(1, "problem") == "1 problem" and plural(2, "problem") == "2 problems"
    assert plural(1, "dataset") == "1 dataset" and plural(1200, "step") == "1,200 steps"
    r = Report()
    kept = {"dataset": "kuka", "file": "f", "episode_id": "e1", "reason": "missing instruction (kept)",
            "episodes_lost": 0}  # fmt: skip
    r.add_problems([kept])
    assert r.summary_lines("OUT/report.json") == [
        "  dropped: nothing",
        "  kept with notes: 1 problem (1 x missing instruction (kept); see OUT/report.json)",
    ]
    r.add_problems([{**kept, "episode_id": None, "reason": "corrupt record (offset 12)", "episodes_lost": 3}])
    assert r.summary_lines("OUT/report.json")[:2] == [
        "  dropped: 3 episodes (1 problem; see OUT/report.json)",
        "    3 x kuka: corrupt record",
    ]


def test_importing_beam_says_nothing():
    r = cli("beam_jobs.collect", timeout=300)  # imports Beam through beam_jobs; the module has no main
    assert r.returncode == 0 and r.stderr == "", r.stderr


@pytest.mark.slow
def test_a_run_prints_only_its_own_lines(bridge_root, tmp_path):
    """A full run from a fresh process, stderr not a terminal: stage lines, no warnings, no bars."""
    r = cli("pipeline.run", "--mixture", "bridge", "--data-dir", str(bridge_root), "--out", str(tmp_path / "o"),
            "--no-depth", "--image-size", "32")  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    for line in r.stderr.splitlines():
        assert re.match(r"(Reading RLDS data from |mixture 'bridge': 1 dataset,|stats: |grids: |export: )", line), line
    assert "\r" not in r.stderr
    out = r.stdout.splitlines()
    assert out[0].startswith("done in ") and ": 1 dataset, 25 episodes, 200 steps" in out[0]
    assert "  dropped: nothing" in out and out[-1].endswith("report.html (open it in a browser)")


@pytest.mark.slow
def test_writing_the_sample_corpus_is_quiet(tmp_path):
    r = cli("sources.sample", "--out", str(tmp_path / "c"), "--episodes", "1", "--datasets", "kuka")
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stderr.splitlines() == [f"sample: kuka -> {tmp_path / 'c' / 'kuka' / '0.1.0'}"]
