"""grids.inspect, grids.rediscretize and pipeline.export on a real (Bridge) export."""

import shutil

import numpy as np
import pytest
import scipy.sparse as sp
from PIL import Image

from grids import inspect, rediscretize
from grids.grid import ActionGrid, grid_from_gaussians, uniform_grid
from grids.rediscretize import apply_embedding_map, embedding_map
from grids.tokenizer import ActionTokenizer
from pipeline import export
from pipeline.run import main as run_main
from shards.manifest import verify_manifest
from tests.pipeline.test_end_to_end import read_rows

pytestmark = pytest.mark.slow  # end-to-end runs of the job


@pytest.fixture(scope="module")
def bridge_out(bridge_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("tools") / "out"
    assert (
        run_main(
            [
                "--mixture",
                "bridge",
                "--data-dir",
                str(bridge_root),
                "--out",
                str(out),
                "--no-depth",
                "--image-size",
                "48",
                "--shard-mb",
                "0.3",
            ]
        )
        == 0
    )
    return out


def table_of(out):
    m = verify_manifest(str(out))
    return m, read_rows(out, m, "bridge_orig")


def assert_pngs(paths, n):
    assert len(paths) == n
    for p in paths:
        with open(p, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        with Image.open(p) as im:
            assert im.size[0] > 100 and im.size[1] > 100


def test_inspect_without_and_with_data(bridge_out, tmp_path, capsys):
    grid = str(bridge_out / "grids" / "bridge.json")
    assert inspect.main([grid, "--out", str(tmp_path / "a")]) == 0  # the stored metrics: occupancy.png too
    alone = capsys.readouterr().out
    assert_pngs(sorted((tmp_path / "a").glob("*.png")), 10)
    assert inspect.main([str(bridge_out), "--data", str(bridge_out), "--out", str(tmp_path / "b")]) == 0
    text = capsys.readouterr().out
    assert_pngs(sorted((tmp_path / "b").glob("*.png")), 11)  # + one row per dataset
    assert "token entropy" in text and "theta" in text and "occ min" in text
    stored = next(line for line in alone.splitlines() if line.startswith("grid file: fitted-on data"))
    export = next(line for line in text.splitlines() if line.startswith("export: all datasets (1) = fitted-on"))
    assert stored.split()[4:] == export.split()[6:]  # the run's numbers, recomputed from the shards
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert inspect.main([str(bad)]) == 2


def test_rediscretize_for_a_new_robot(bridge_out, tmp_path):
    base = ActionGrid.load(str(bridge_out / "grids" / "bridge.json"))
    rng = np.random.default_rng(0)
    new_robot = np.clip(rng.normal([0.4, -0.3, 0.5, 0.2, -0.2, 0.1, 0.5], 0.2, (5000, 7)), -1, 1)
    new_robot[:, 6] = rng.integers(0, 2, len(new_robot))
    np.save(tmp_path / "robot.npy", new_robot)
    out_dir = tmp_path / "work"
    shutil.copytree(bridge_out, out_dir)
    m_before, t_before = table_of(out_dir)
    assert (
        rediscretize.main(
            [
                "--base",
                str(bridge_out / "grids" / "bridge.json"),
                "--data",
                str(tmp_path / "robot.npy"),
                "--out",
                str(tmp_path / "new.json"),
                "--retokenize",
                str(out_dir),
            ]
        )
        == 0
    )
    new = ActionGrid.load(str(tmp_path / "new.json"))
    assert new.counts == base.counts
    assert any(not np.allclose(new.edges[v], base.edges[v]) for v in new.edges)
    matrix = sp.load_npz(tmp_path / "new_embedding_map.npz")
    assert matrix.shape == (8194, 8194)
    np.testing.assert_allclose(np.asarray(matrix.sum(axis=1)).ravel(), 1.0, atol=1e-12)
    # re-tokenized: same rows, tokens from the new grid, every other column unchanged, old files gone
    m_after, t_after = table_of(out_dir)
    assert t_after.num_rows == t_before.num_rows
    action = np.stack(t_after.column("action").to_numpy(zero_copy_only=False))
    np.testing.assert_array_equal(
        np.stack(t_after.column("action_tokens").to_numpy(zero_copy_only=False)), ActionTokenizer(new).encode(action)
    )
    for col in ("episode_id", "step", "image", "action", "raw_action"):
        assert t_after.column(col).equals(t_before.column(col))
    old = {s["path"] for s in m_before["datasets"]["bridge_orig"]["shards"]}
    assert not any((out_dir / p).exists() for p in old)
    assert len(m_after["datasets"]["bridge_orig"]["shards"]) == len(old) > 1


def test_embedding_map_is_identity_for_the_same_grid_and_interpolates_by_hand():
    g = grid_from_gaussians(
        {v: {"mu": 0.1, "sigma": 0.4} for v in ("x", "y", "z", "roll", "pitch", "yaw")}
        | {"theta": {"mu": 1.5, "sigma": 0.8}, "phi": {"mu": 0.0, "sigma": 1.5}, "r": {"mu": 0.5, "sigma": 0.3}}
    )
    m = embedding_map(g, g)
    assert (m != sp.identity(8194, format="csr")).nnz == 0
    # 2 roll bins: old centres -0.5, 0.5; new centres -0.75, 0.25 -> weights (1 on bin 0) and (0.25, 0.75)
    counts = {"theta": 1, "phi": 1, "r": 1, "roll": 2, "pitch": 1, "yaw": 1, "gripper": 2}
    old = uniform_grid(counts)
    new = uniform_grid(counts)
    new.edges["roll"] = np.array([-1.0, -0.5, 1.0])
    dense = embedding_map(old, new).toarray()
    np.testing.assert_allclose(dense[1:3, 1:3], [[1.0, 0.0], [0.25, 0.75]])
    np.testing.assert_allclose(dense[3:, 3:], np.eye(2))
    old_embeddings = np.arange(5 * 4, dtype=float).reshape(5, 4)
    np.testing.assert_allclose(
        apply_embedding_map(embedding_map(old, new), old_embeddings)[2],
        0.25 * old_embeddings[1] + 0.75 * old_embeddings[2],
    )


def test_export_reencodes_images_only(bridge_out, tmp_path):
    out_dir = tmp_path / "img"
    shutil.copytree(bridge_out, out_dir)
    m_before, t_before = table_of(out_dir)
    assert "24 px" not in (out_dir / "report.html").read_text()
    assert export.main([str(out_dir), "--image-size", "24"]) == 0
    m_after, t_after = table_of(out_dir)
    assert t_after.num_rows == t_before.num_rows and m_after["image_size"] == 24
    assert 'data-path="image_size">24</span> px' in (out_dir / "report.html").read_text()  # the page follows
    from transforms.frames import decode

    assert decode(t_after.column("image")[0].as_py()).shape == (24, 24, 3)
    for col in ("action", "action_tokens", "raw_action", "episode_id"):
        assert t_after.column(col).equals(t_before.column(col))
    intr = m_after["datasets"]["bridge_orig"]["intrinsics"]
    assert intr["width"] == 24 and intr["fx"] == pytest.approx(
        m_before["datasets"]["bridge_orig"]["intrinsics"]["fx"] / 2
    )
    assert export.main([str(out_dir)]) == 2


def test_rediscretize_from_rlds_through_the_registry(bridge_root, bridge_out, tmp_path):
    out = tmp_path / "robot.json"
    assert (
        rediscretize.main(
            [
                "--base",
                str(bridge_out / "grids" / "bridge.json"),
                "--data-dir",
                str(bridge_root),
                "--datasets",
                "bridge_orig=1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    new = ActionGrid.load(str(out))
    # the same data as the base grid's: the refit recovers the base's Gaussians
    base = ActionGrid.load(str(bridge_out / "grids" / "bridge.json"))
    for v in ("theta", "phi", "r", "roll"):
        assert new.gs_params[v]["mu"] == pytest.approx(base.gs_params[v]["mu"], abs=1e-6)
    assert (tmp_path / "robot_work" / "dataset_statistics.json").exists()
    assert rediscretize.main(["--base", str(bridge_out / "grids" / "bridge.json"), "--out", str(out)]) == 2
