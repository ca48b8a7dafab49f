"""Bad command-line input: one clear line, exit code 2, nothing partial written."""

import os
import subprocess
import sys

from tests.conftest import ROOT


def run_cli(*args, cwd=ROOT):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pipeline.run", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def assert_one_line_error(r, message):
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    lines = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], r.stderr[-2000:]
    assert "Traceback" not in r.stderr


def test_missing_data_dir(tmp_path):
    out = tmp_path / "out"
    r = run_cli("--mixture", "bridge", "--data-dir", str(tmp_path / "absent"), "--out", str(out))
    assert_one_line_error(r, f"data dir '{tmp_path / 'absent'}' does not exist")
    assert not out.exists()


def test_dataset_missing_under_data_dir(tmp_path, bridge_root):
    out = tmp_path / "out"
    r = run_cli("--mixture", "bridge_rt_1", "--data-dir", str(bridge_root), "--out", str(out))
    assert_one_line_error(r, "dataset 'fractal20220817_data' 0.1.0: not found")
    assert not out.exists()


def test_output_path_is_a_file(tmp_path, bridge_root):
    f = tmp_path / "file"
    f.write_text("x")
    r = run_cli("--mixture", "bridge", "--data-dir", str(bridge_root), "--out", str(f))
    assert_one_line_error(r, f"--out '{f}' is a file, not a directory")
    assert f.read_text() == "x"


def test_output_dir_not_writable(tmp_path, bridge_root):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    if os.access(ro, os.W_OK):  # root writes anywhere; /proc/1 it may not
        ro = "/proc/1"
    r = run_cli("--mixture", "bridge", "--data-dir", str(bridge_root), "--out", f"{ro}/out")
    assert_one_line_error(r, "is not writable")


def test_bad_weights_and_unknown_mixture(tmp_path):
    assert_one_line_error(
        run_cli("--datasets", "bridge_orig=-1", "--out", str(tmp_path / "o")), "weight must be a positive number"
    )
    assert_one_line_error(
        run_cli("--mixture", "oxe_magic", "--out", str(tmp_path / "o")), "unknown mixture 'oxe_magic'"
    )
    assert not (tmp_path / "o").exists()
