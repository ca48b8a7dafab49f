"""Malformed input to every command: one line (exit 2), never a traceback, a hang or exit 0 with wrong
data. One table over all CLIs: directories where files are expected and files where directories are,
FIFOs and /dev/zero as input files, undecodable and hostile YAML (alias bombs, python tags, huge numbers,
wrong shapes, duplicate keys), bad sizes, and non-finite values given to a grid fit."""

import contextlib
import io
import json
import os
import shutil
import threading

import numpy as np
import pyarrow as pa
import pytest

from grids import inspect, rediscretize
from grids.grid import uniform_grid
from pipeline import export, run
from shards.schema import open_ipc
from sources import convert, sample

CLIS = {
    "pipeline.run": run.main,
    "pipeline.export": export.main,
    "grids.inspect": inspect.main,
    "grids.rediscretize": rediscretize.main,
    "sources.convert": convert.main,
    "sources.sample": sample.main,
}
HANG = 60  # seconds: anything slower is a hang


def call(cli: str, argv: list[str]) -> tuple[int, str]:
    """(exit code, stderr) of CLI main(argv) in this process, failing the test if it does not return."""
    result = {}

    def target():
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                result["rc"] = CLIS[cli](argv)
        except SystemExit as e:  # argparse
            result["rc"] = e.code
        except BaseException as e:  # a traceback: recorded, asserted on below
            result["exc"] = e
        result["err"] = err.getvalue()

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(HANG)
    assert not t.is_alive(), f"{cli} {argv}: still running after {HANG} s (a hang)"
    assert "exc" not in result, f"{cli} {argv}: raised {result['exc']!r}"
    return result["rc"], result["err"]


YAML = {
    "bomb.yaml": "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(f"{n}: &{n} [{', '.join(['*' + p] * 10)}]\n" for p, n in zip("abcdefgh", "bcdefghi"))
    + "name: bomb\ndatasets: {bridge_orig: 1.0}\n",
    "python.yaml": "name: !!python/object/apply:os.system ['echo pwned']\ndatasets: {bridge_orig: 1}\n",
    "hugeint.yaml": "datasets: {bridge_orig: " + "9" * 5000 + "}\n",
    "bigweight.yaml": "datasets: {bridge_orig: " + "9" * 400 + "}\n",
    "infweight.yaml": "datasets: {bridge_orig: .inf}\n",
    "list.yaml": "datasets: [bridge_orig]\n",
    "toplist.yaml": "- bridge_orig\n",
    "configs_list.yaml": "datasets: {bridge_orig: 1}\ndataset_configs: [my_robot]\n",
    "dup.yaml": "datasets:\n  bridge_orig: 1\n  bridge_orig: 2\n",
    "unhashable.yaml": "datasets:\n  ? [a, b]\n  : 1\n",
    "deep.yaml": "datasets: " + "[" * 5000 + "]" * 5000 + "\n",
    "mixedkeys.yaml": "datasets: {my_robot: 1}\ndataset_configs:\n  my_robot: {1: a, b: c, version: 1.0.0, control_hz: 5, "
    "images: {primary: image}, image_size: [8, 8], instruction: null, proprio: [], action: {}}\n",
    "hugehz.yaml": "datasets: {my_robot: 1}\ndataset_configs:\n  my_robot: {version: 1.0.0, control_hz: "
    + "9" * 400
    + ", images: {primary: image}, image_size: [8, 8], instruction: null, proprio: [], action: "
    "{translation: {key: action, slice: [0, 3]}, rotation: {key: action, slice: [3, 6]}, gripper: {key: action, "
    "slice: [6, 7], convention: absolute_open}}}\n",
    "hugesize.yaml": "datasets: {my_robot: 1}\ndataset_configs:\n  my_robot: {version: 1.0.0, control_hz: "
    + "9" * 400
    + ", images: {primary: image}, image_size: [10000000000, 10000000000], instruction: null, proprio: [], action: "
    "{translation: {key: action, slice: [0, 3]}, rotation: {key: action, slice: [3, 6]}, gripper: {key: action, "
    "slice: [6, 7], convention: absolute_open}}}\n",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory, bridge_root):
    """Files for the table: hostile YAML, a FIFO, a valid grid, a small export and a tampered copy of it."""
    w = tmp_path_factory.mktemp("hostile")
    for name, text in YAML.items():
        (w / name).write_text(text)
    (w / "latin1.yaml").write_bytes(b"name: caf\xe9\ndatasets: {bridge_orig: 1}\n")
    os.mkfifo(w / "fifo.yaml")
    os.mkfifo(w / "fifo.json")
    os.mkfifo(w / "fifo.npy")
    os.mkfifo(w / "fifo.npz")
    (w / "adir.yaml").mkdir()
    (w / "afile").write_text("x")
    (w / "grid.json").write_text(uniform_grid().dumps())
    (w / "latin1.json").write_bytes(b'{"a": "caf\xe9"}')
    actions = np.random.default_rng(0).uniform(-1, 1, (50, 7))
    np.save(w / "ok.npy", actions)
    nan = actions.copy()
    nan[7, 2] = np.nan
    np.save(w / "nan.npy", nan)
    inf = actions.copy()
    inf[3, 0] = np.inf
    np.save(w / "inf.npy", inf)
    np.save(w / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (w / "truncated.npy").write_bytes((w / "ok.npy").read_bytes()[:100])
    (w / "empty_dir").mkdir()
    out = w / "out"
    rc, err = call("pipeline.run", ["--mixture", "bridge", "--data-dir", str(bridge_root), "--out", str(out),
                                    "--no-depth", "--image-size", "32", "--max-episodes", "3"])  # fmt: skip
    assert rc == 0, err
    # the same export with one NaN written into an action column (a hand-edited or damaged shard)
    shutil.copytree(out, w / "tampered")
    manifest = json.loads((out / "manifest.json").read_text())
    shard = w / "tampered" / manifest["datasets"]["bridge_orig"]["shards"][0]["path"]
    table = open_ipc(str(shard)).read_all()
    values = table.column("action").combine_chunks().values.to_numpy(zero_copy_only=False).copy()
    values[5] = np.nan
    column = pa.FixedSizeListArray.from_arrays(pa.array(values, pa.float32()), 7)
    table = table.set_column(table.schema.get_field_index("action"), "action", column)
    with pa.OSFile(str(shard), "wb") as f, pa.ipc.new_file(f, table.schema) as writer:
        writer.write_table(table)
    # a copy of the Bridge slice whose features.json / dataset_info.json are directories
    for broken in ("features.json", "dataset_info.json"):
        root = w / f"bad_{broken.split('.')[0]}"
        shutil.copytree(bridge_root, root)
        meta = next(root.rglob(broken))
        meta.unlink()
        meta.mkdir()
    return w


R = ["--mixture", "bridge", "--no-depth"]
TABLE = [
    # pipeline.run: --mixture files
    ("pipeline.run", ["--mixture", "{w}/adir.yaml"], "is a directory; give a mixture file"),
    ("pipeline.run", ["--mixture", "{w}/empty_dir"], "is a directory; give a mixture file"),
    ("pipeline.run", ["--mixture", "{w}/fifo.yaml"], "is a FIFO, not a regular file"),
    ("pipeline.run", ["--mixture", "/dev/zero"], "is a device or socket, not a regular file"),
    ("pipeline.run", ["--mixture", "{w}/latin1.yaml"], "not UTF-8 text (byte 9"),
    ("pipeline.run", ["--mixture", "{w}/bomb.yaml"], "once its aliases (*name) are expanded: refused"),
    ("pipeline.run", ["--mixture", "{w}/python.yaml"], "could not determine a constructor for the tag"),
    ("pipeline.run", ["--mixture", "{w}/hugeint.yaml"], "a value YAML cannot convert"),
    ("pipeline.run", ["--mixture", "{w}/bigweight.yaml"], "weight must be a positive number"),
    ("pipeline.run", ["--mixture", "{w}/infweight.yaml"], "weight must be a positive number, got inf"),
    ("pipeline.run", ["--mixture", "{w}/list.yaml"], "expected a non-empty mapping of dataset: weight"),
    ("pipeline.run", ["--mixture", "{w}/toplist.yaml"], "expected a mapping with a 'datasets' field"),
    ("pipeline.run", ["--mixture", "{w}/configs_list.yaml"], "dataset_configs must be a mapping"),
    ("pipeline.run", ["--mixture", "{w}/dup.yaml"], "line 3: duplicate key 'bridge_orig'"),
    ("pipeline.run", ["--mixture", "{w}/unhashable.yaml"], "a key must be a plain value"),
    ("pipeline.run", ["--mixture", "{w}/deep.yaml"], "nested too deeply"),
    ("pipeline.run", ["--mixture", "{w}/mixedkeys.yaml"], "unknown field(s) ['1', 'b']"),
    ("pipeline.run", ["--mixture", "{w}/hugesize.yaml"], "image_size must be [height, width] in pixels (1..65535), got [10000000000"),
    ("pipeline.run", ["--mixture", "{w}/hugehz.yaml"], "control_hz must be a positive number, got 99999"),
    # pipeline.run: other paths
    ("pipeline.run", [*R, "--data-dir", "{w}/bad_features"], "features.json: is a directory, not a file"),
    ("pipeline.run", [*R, "--data-dir", "{w}/bad_dataset_info"], "dataset_info.json: is a directory, not a file"),
    ("pipeline.run", [*R, "--text-tokenizer", "{w}/afile"], "--text-tokenizer '{w}/afile' is a file"),
    ("pipeline.run", [*R[:2], "--depth-model", "{w}/grid.json"], "--depth-model '{w}/grid.json' is a file"),
    ("pipeline.run", [*R[:2], "--depth-model", "{w}/absent"], "--depth-model '{w}/absent' is not there"),
    ("pipeline.run", [*R, "--out", "{w}/afile"], "is a file, not a directory"),
    ("pipeline.run", [*R, "--image-size", "0"], "--image-size must be between 8 and 4096"),
    # pipeline.export
    ("pipeline.export", ["{w}/absent", "--image-size", "64"], "does not exist"),
    ("pipeline.export", ["{w}/afile", "--image-size", "64"], "is a file, not an output directory"),
    ("pipeline.export", ["{w}/out/manifest.json", "--image-size", "64"], "(give its directory)"),
    ("pipeline.export", ["{w}/out", "--image-size", "0"], "--image-size must be between 8 and 4096 pixels, got 0"),
    ("pipeline.export", ["{w}/out", "--image-size", "-3"], "--image-size must be between 8 and 4096 pixels, got -3"),
    ("pipeline.export", ["{w}/out", "--image-size", "100000"], "got 100000"),
    ("pipeline.export", ["{w}/out", "--grid", "{w}/out"], "give the grid file {w}/out/grids/bridge.json"),
    ("pipeline.export", ["{w}/out", "--grid", "{w}/fifo.json"], "is a FIFO"),
    ("pipeline.export", ["{w}/out", "--grid", "/dev/zero"], "is a device or socket"),
    ("pipeline.export", ["{w}/out", "--grid", "{w}/latin1.json"], "not UTF-8 text"),
    ("pipeline.export", ["{w}/out", "--grid", "{w}/ok.npy"], "not UTF-8 text"),
    # grids.inspect
    ("grids.inspect", ["{w}/empty_dir"], "is a directory with no grid file: give the grid file, OUT/grids/<mixture>.json"),
    ("grids.inspect", ["{w}/fifo.json"], "is a FIFO"),
    ("grids.inspect", ["/dev/zero", "--out", "{w}/plots"], "is a device or socket"),
    ("grids.inspect", ["{w}/grid.json", "--data", "{w}/nan.npy", "--out", "{w}/p"], "1 non-finite value(s) (NaN or infinity), the first in row 7"),
    ("grids.inspect", ["{w}/grid.json", "--data", "{w}/fifo.npy", "--out", "{w}/p"], "is a FIFO"),
    ("grids.inspect", ["{w}/grid.json", "--data", "{w}/objects.npy", "--out", "{w}/p"], "not a .npy array"),
    ("grids.inspect", ["{w}/grid.json", "--data", "{w}/truncated.npy", "--out", "{w}/p"], "not a .npy array"),
    ("grids.inspect", ["{w}/grid.json", "--data", "{w}/afile", "--out", "{w}/p"], "not an output directory with a manifest"),
    ("grids.inspect", ["{w}/grid.json", "--data", "{w}/tampered", "--out", "{w}/p"], "train-00000-of-00001.arrow: action column: 1 non-finite value(s)"),
    ("grids.inspect", ["{w}/grid.json", "--out", "{w}/afile"], "--out '{w}/afile': the plots go into a local directory"),
    # grids.rediscretize
    ("grids.rediscretize", ["--base", "{w}/out", "--data", "{w}/ok.npy", "--out", "{w}/n.json"], "give the grid file {w}/out/grids/bridge.json"),
    ("grids.rediscretize", ["--base", "{w}/grid.json", "--data", "{w}/nan.npy", "--out", "{w}/n.json"], "nan.npy: 1 non-finite value(s)"),
    ("grids.rediscretize", ["--base", "{w}/grid.json", "--data", "{w}/inf.npy", "--out", "{w}/n.json"], "the first in row 3"),
    ("grids.rediscretize", ["--base", "{w}/grid.json", "--data", "{w}/tampered", "--out", "{w}/n.json"], "action column: 1 non-finite value(s)"),
    ("grids.rediscretize", ["--base", "{w}/grid.json", "--data", "{w}/ok.npy", "--out", "{w}/empty_dir"], "--out '{w}/empty_dir' is a directory"),
    ("grids.rediscretize", ["--base", "{w}/grid.json", "--data", "{w}/ok.npy", "--out", "{w}/afile/n.json"], "'{w}/afile' is a file, not a directory"),
    ("grids.rediscretize", ["--base", "{w}/grid.json", "--data", "{w}/ok.npy", "--out", "{w}/n.json", "--map", "{w}/empty_dir"], "--map '{w}/empty_dir' is a directory"),
    ("grids.rediscretize", ["--base", "{w}/grid.json", "--data", "{w}/ok.npy", "--out", "{w}/n2.json", "--retokenize", "{w}/afile"], "--retokenize:"),
    ("grids.rediscretize", ["--base", "{w}/grid.json", "--data-dir", "{w}", "--mixture", "{w}/adir.yaml", "--out", "{w}/n.json"], "is a directory; give a mixture file"),
    ("grids.rediscretize", ["--base", "/dev/zero", "--data", "{w}/ok.npy", "--out", "{w}/n.json"], "is a device or socket"),
    # sources.convert
    ("sources.convert", ["{w}/empty_dir", "--name", "r", "--out", "{w}/d", "--control-hz", "5"], "no .npz, .h5, .hdf5 files in this directory"),
    ("sources.convert", ["{w}/fifo.npz", "--name", "r", "--out", "{w}/d", "--control-hz", "5"], "not a regular file or directory"),
    ("sources.convert", ["{w}/truncated.npy", "--name", "r", "--out", "{w}/d", "--control-hz", "5"], "not an episode file"),
    ("sources.convert", ["{w}/empty_dir", "--name", "r", "--out", "{w}/afile", "--control-hz", "5"], "must be a local directory"),
    ("sources.convert", ["{w}/empty_dir", "--name", "My-Robot", "--out", "{w}/d", "--control-hz", "5"], "a dataset name is snake_case"),
    ("sources.convert", ["{w}/empty_dir", "--name", "bridge_orig", "--out", "{w}/d", "--control-hz", "5"], "is a registry dataset"),
    ("sources.convert", ["{w}/empty_dir", "--name", "r", "--out", "{w}/d", "--control-hz", "5", "--mixture", "{w}/empty_dir"], "is a directory; give a file name"),
    # sources.sample
    ("sources.sample", ["--out", "{w}/afile", "--datasets", "kuka"], "is a file, not a directory"),
    ("sources.sample", ["--out", "{w}/s", "--episodes", "0"], "--episodes must be between 1 and 1000"),
    ("sources.sample", ["--out", "{w}/s", "--episodes", "1000000"], "--episodes must be between 1 and 1000"),
]  # fmt: skip


@pytest.mark.parametrize("cli, argv, message", TABLE, ids=[f"{c}:{' '.join(a)[:50]}" for c, a, _ in TABLE])
def test_one_line_and_exit_2(world, cli, argv, message):
    argv = [a.replace("{w}", str(world)) for a in argv]
    rc, err = call(cli, argv)
    lines = [x for x in err.splitlines() if x.startswith("error:")]
    assert rc == 2, (rc, err[-2000:])
    assert len(lines) == 1 and message.replace("{w}", str(world)) in lines[0], err[-2000:]
    assert "Traceback" not in err


def test_argparse_refusals_are_one_usage_line(world):
    """Values argparse itself rejects (not a number, a missing argument): its usage and one error line."""
    for cli, argv in [
        ("pipeline.export", [str(world / "out"), "--image-size", "big"]),
        ("grids.rediscretize", ["--base", str(world / "grid.json")]),
        ("sources.convert", [str(world), "--name", "r", "--out", str(world / "d"), "--control-hz", "-5"]),
    ]:
        rc, err = call(cli, argv)
        assert rc == 2 and len([x for x in err.splitlines() if "error:" in x]) == 1, err


def test_a_data_dir_with_non_finite_actions_is_counted(tmp_path):
    """grids.rediscretize --data-dir: an episode whose actions hold a NaN is left out and counted; the fit is
    the one on the other episodes alone."""
    rng = np.random.default_rng(1)
    episodes = tmp_path / "eps"
    episodes.mkdir()
    for i in range(4):
        a = rng.uniform(-0.05, 0.05, (12, 7)).astype(np.float32)
        a[:, 6] = 1.0
        if i == 2:
            a[4, 1] = np.nan
        np.savez(episodes / f"ep{i}.npz", image=np.zeros((12, 16, 16, 3), np.uint8), action=a)
    rc, err = call("sources.convert", [str(episodes), "--name", "nan_robot", "--out", str(tmp_path / "data"),
                                       "--control-hz", "5", "--mixture", str(tmp_path / "nan.yaml")])  # fmt: skip
    assert rc == 0, err
    base = tmp_path / "grid.json"
    base.write_text(uniform_grid().dumps())
    out = tmp_path / "new.json"
    rc, err = call("grids.rediscretize", ["--base", str(base), "--data-dir", str(tmp_path / "data"), "--mixture",
                                          str(tmp_path / "nan.yaml"), "--out", str(out)])  # fmt: skip
    assert rc == 0, err
    assert "episodes that could not be used (left out): {'nan_robot': 1}" in err
    grid = json.loads(out.read_text())
    assert grid["provenance"]["steps"] == 36  # 3 episodes x 12 steps: the NaN episode is not in the fit
    assert all(np.isfinite([p["mu"], p["sigma"]]).all() for p in grid["gs_params"].values())
