"""Exports made by the real pipeline, shared by the trainer-side tests of one session."""

from pathlib import Path

import pytest

# taco_play: a wrist camera, 7-D proprio, 15 Hz; dobbe: 3.75 Hz; fractal: 8-D proprio, 3 Hz; roboturk: no proprio
SAMPLE_DATASETS = {"taco_play": 1.0, "dobbe": 2.0, "fractal20220817_data": 0.5, "roboturk": 1.0}


def run_pipeline(args: list[str]) -> None:
    from pipeline.run import main

    assert main([*args, "--no-depth"]) == 0


@pytest.fixture(scope="session")
def bridge_export(bridge_root, tmp_path_factory) -> Path:
    """The real Bridge slice (25 episodes, 200 steps) exported at 224 px."""
    out = tmp_path_factory.mktemp("bridge_export") / "bridge"
    run_pipeline(["--mixture", "bridge", "--data-dir", str(bridge_root), "--out", str(out)])
    return out


@pytest.fixture(scope="session")
def sample_export(sample_corpus, tmp_path_factory) -> Path:
    """Four datasets of the sample corpus exported at 64 px."""
    out = tmp_path_factory.mktemp("sample_export") / "sample"
    weights = ",".join(f"{k}={v}" for k, v in SAMPLE_DATASETS.items())
    run_pipeline(["--datasets", weights, "--data-dir", str(sample_corpus), "--out", str(out), "--image-size", "64"])
    return out
