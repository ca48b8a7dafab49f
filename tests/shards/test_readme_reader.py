"""The README's "Reading shards in training" runs as written: every python snippet and command of the
section, taken from README.md, run in a directory where output/oxe_magic_soup is a small export (three
datasets, one with a wrist camera), in fresh processes with every warning an error (DataLoader workers
inherit the filters)."""

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.shards.exports import build_export

SECTION = "## Reading shards in training"
# not ours: torchdata 0.11's StatefulDataLoader calls torch.set_vital, which torch >= 2.10 deprecates
WARNINGS = ["-W", "error", "-W", "ignore:'set_vital' is deprecated:UserWarning"]


def section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end > 0 else len(text)]


def snippets(lang: str) -> list[str]:
    """The section's fenced blocks of this language ("": commands)."""
    return [body for tag, body in re.findall(r"```(\w*)\n(.*?)```", section(), re.S) if tag == lang]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    work = tmp_path_factory.mktemp("readme")
    export = work / "output" / "oxe_magic_soup"
    export.mkdir(parents=True)
    build_export(export, {"a": [[12, 9], [14]], "b": [[10, 11]], "c": [[8, 8, 8]]}, {"a": 1.0, "b": 2.0, "c": 0.5},
                 wrist=("b",), rows_per_batch=8)  # fmt: skip
    return work


def run(args, cwd, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, **kw)


def test_the_section_has_snippets():
    assert len(snippets("python")) >= 2 and "StatefulDataLoader" in snippets("python")[0]
    assert any("python -m shards.verify" in block for block in snippets(""))


@pytest.mark.parametrize("index", range(len(snippets("python"))))
def test_every_python_snippet_runs_as_written_without_a_warning(workdir, index):
    proc = run([sys.executable, *WARNINGS, "-c", snippets("python")[index]], workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Warning" not in proc.stderr, proc.stderr[-3000:]


def test_every_command_runs_as_written(workdir):
    commands = [line for block in snippets("") for line in block.splitlines() if line.startswith("python -m ")]
    assert commands
    for command in commands:
        proc = run(["bash", "-c", command.replace("python", sys.executable, 1)], workdir)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.strip().endswith("everything matches the manifest"), proc.stdout
