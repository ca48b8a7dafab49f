"""The README's rerun commands and its mixture file, run as written (README, "Reruns" and "Using it")."""

import json
import os
import re
import shlex
import subprocess
import sys

import pytest
import yaml

from manifests.registry import BUILTIN_SAMPLE, resolve_mixture
from pipeline.run import main
from tests.conftest import ROOT
from tests.pipeline.test_provenance import builtin_sample  # noqa: F401 -- a fixture

pytestmark = pytest.mark.slow  # end-to-end runs of the job

README = (ROOT / "README.md").read_text()


def block_after(heading: str, lang: str = "") -> str:
    """The first code block after a heading (or any line that starts with `heading`)."""
    start = README.index(heading)
    m = re.compile(rf"^```{lang}\n(.*?)^```", re.S | re.M).search(README, start)
    return m.group(1)


@pytest.fixture()
def repo_like(bridge_root, tmp_path):
    """A working directory where the README's relative paths mean what they mean in the repository."""
    (tmp_path / "tests" / "data").mkdir(parents=True)
    (tmp_path / "tests" / "data" / "bridge_debug").symlink_to(bridge_root)
    return tmp_path


def test_the_reruns_block_runs_as_written(repo_like):
    commands = [line for line in block_after("## Reruns: up to date").splitlines() if line.strip()]
    assert len(commands) == 7
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    results = []
    for line in commands:
        argv = shlex.split(line)
        assert argv[:2] == ["python", "-m"], line
        results.append(subprocess.run([sys.executable, *argv[1:]], cwd=repo_like, env=env, capture_output=True,
                                      text=True, timeout=600))  # fmt: skip
    codes = [r.returncode for r in results]
    assert codes == [0, 0, 0, 0, 0, 0, 2], [r.stderr[-2000:] for r in results]
    out = repo_like / "output" / "bridge"
    assert results[1].stdout.startswith(f"up to date: {out} holds the export this command makes")
    assert "4 task(s) take their frames from the frame cache (no image decoded), 0 are encoded" in results[2].stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["grid_source"]["kind"] == "given"
    assert manifest["grid_source"]["path"] == str(repo_like / "new.json")
    assert manifest["normalization"] == "normal"
    assert (repo_like / "output" / "custom-bridge_orig-1" / "manifest.json").exists()
    assert list((repo_like / "output" / "cache" / "frames" / "bridge_orig").glob("*/*.arrow"))
    plan = json.loads(results[6].stdout)
    assert [d["found"] for d in plan["datasets"]] == [True, False]
    assert "dataset 'fractal20220817_data' 0.1.0: not found" in results[6].stderr


def test_the_mixture_file_example_as_written(repo_like, builtin_sample, monkeypatch, capfd):  # noqa: F811
    text = block_after("A mixture file of your own", "yaml")
    mix = repo_like / "my_mix.yaml"
    mix.write_text(text)
    m = resolve_mixture(str(mix))
    assert m.roots == {"my_robot": "/data/my_rlds", "fractal20220817_data": BUILTIN_SAMPLE}
    robot = m.datasets["my_robot"]
    assert robot.image_size == (480, 640) and robot.intrinsics.source == "dataset"
    assert (robot.intrinsics.width, robot.intrinsics.height) == (640, 480)
    assert yaml.safe_load(text)["datasets"]["bridge_orig"] == 1.0
    monkeypatch.chdir(repo_like)
    assert main(["--mixture", "my_mix.yaml", "--data-dir", "tests/data/bridge_debug", "--dry-run"]) == 2
    captured = capfd.readouterr()
    rows = {d["name"]: d for d in json.loads(captured.out)["datasets"]}
    assert rows["bridge_orig"]["found"] and rows["fractal20220817_data"]["found"]
    assert rows["fractal20220817_data"]["root"] == str(builtin_sample) and rows["fractal20220817_data"]["synthetic"]
    assert captured.err.splitlines()[-1] == (
        "error: dataset 'my_robot': data dir '/data/my_rlds' (the mixture file's data_dir) does not exist"
    )
