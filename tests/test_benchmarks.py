"""Every benchmark command the README names runs as a smoke test (`--smoke`: tiny sizes, the same
code path, its table printed). The figures stay out of the tests: a benchmark reports ratios measured
in its own run, and only a full-size run on a quiet machine means anything."""

import os
import re
import shlex
import subprocess
import sys

import pytest

from tests.conftest import ROOT

README = ROOT / "README.md"


def readme_bench_commands() -> list[str]:
    """Each distinct `python -m bench.<name> ...` of the README, from its code spans and code blocks."""
    text = README.read_text()
    code = re.findall(r"`([^`\n]+)`", text) + re.findall(r"^```\w*\n(.*?)^```", text, re.S | re.M)
    found = []
    for chunk in code:
        for line in chunk.splitlines():
            m = re.search(r"(?:\.venv/bin/)?python -m bench\.\w+[^#]*", line)
            if m and m.group(0).strip() not in found:
                found.append(m.group(0).strip())
    return found


COMMANDS = readme_bench_commands()


def test_every_benchmark_is_in_the_readme():
    modules = {p.stem for p in (ROOT / "bench").glob("*.py")} - {"__init__", "common"}
    named = {re.search(r"bench\.(\w+)", c).group(1) for c in COMMANDS}
    assert modules <= named, f"benchmarks the README does not name: {sorted(modules - named)}"
    assert len(COMMANDS) >= len(modules)


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS)
def test_readme_benchmark_runs_as_a_smoke_test(command, tmp_path_factory):
    argv = shlex.split(command)
    assert argv[:3] in (["python", "-m", argv[2]], [".venv/bin/python", "-m", argv[2]]), command
    # a placeholder the reader fills in (OUT, DIR): the smoke run makes its own tiny input instead
    argv = [a for a in argv if not re.fullmatch(r"[A-Z][A-Z_]*", a)]
    bench_dir = tmp_path_factory.getbasetemp() / "bench"  # one per session: the benches share corpora
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SPATIAL_PIPELINE_BENCH": str(bench_dir), "TF_CPP_MIN_LOG_LEVEL": "3"}
    p = subprocess.run(
        [sys.executable, *argv[1:], "--smoke"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert p.returncode == 0, f"{command} --smoke failed:\n{p.stderr[-3000:]}"
    lines = [x for x in p.stdout.splitlines() if x.strip()]
    assert len(lines) >= 3, f"{command} --smoke printed no table:\n{p.stdout}"  # a title, a header or rows, a summary
