"""The suite's own rules: it runs whole from a clone (its data is in the repository), and a skip
other than a missing CUDA device fails the run (tests/conftest.py)."""

import hashlib
import os
import subprocess
import sys
import textwrap

from tests.conftest import BRIDGE_ROOT, MIXTURES_MD, ROOT

MINI_SUITE = textwrap.dedent("""
    import pytest

    def test_passes():
        assert True

    def test_skips_for_a_missing_file():
        pytest.skip("some file is not here")

    def test_skips_for_a_missing_package():
        pytest.importorskip("a_package_that_is_not_installed")

    @pytest.mark.gpu
    def test_skips_without_cuda():
        pytest.skip("no CUDA device on this machine")
""")


def test_a_skip_outside_the_gpu_mark_fails_the_run(tmp_path):
    (tmp_path / "test_mini.py").write_text(MINI_SUITE)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert p.returncode == 1, p.stdout[-2000:]
    last = p.stdout.strip().splitlines()[-1]
    assert "2 failed" in last and "1 passed" in last and "1 skipped" in last, last
    assert "test_skips_for_a_missing_file was skipped (Skipped: some file is not here)" in p.stdout
    assert "a_package_that_is_not_installed" in p.stdout


def test_the_test_data_is_in_the_repository_byte_for_byte():
    # the sha256 sums tests/data/README.md publishes for the Bridge slice
    readme = (ROOT / "tests" / "data" / "README.md").read_text()
    files = sorted((BRIDGE_ROOT / "bridge_dataset" / "1.0.0").iterdir())
    assert [f.name for f in files] == [
        "bridge_dataset-train.tfrecord-00000-of-00001",
        "bridge_dataset-val.tfrecord-00000-of-00001",
        "dataset_info.json",
        "features.json",
    ]
    for f in files:
        assert f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f.name}" in readme
    assert BRIDGE_ROOT.is_relative_to(ROOT) and MIXTURES_MD.is_relative_to(ROOT)
    if (ROOT / ".git").exists():  # a git checkout: every data file is committed, not just present here
        tracked = subprocess.run(["git", "ls-files", "tests/data"], cwd=ROOT, capture_output=True, text=True).stdout
        for f in [*files, MIXTURES_MD]:
            assert str(f.relative_to(ROOT)) in tracked.splitlines(), f
