"""python -m pipeline.run end to end, checked against independent computations."""

import json

import numpy as np
import pyarrow as pa
import pytest

from grids.grid import ActionGrid
from grids.tokenizer import ActionTokenizer
from manifests.registry import load_registry
from pipeline.report import output_digests as file_hashes
from pipeline.run import main
from shards.manifest import verify_manifest
from sources.rlds import open_dataset
from transforms.normalize import normalize
from transforms.standardize import required_keys, standardize

pytestmark = pytest.mark.slow  # end-to-end runs of the job


def read_rows(out, manifest, dataset):
    """A dataset's rows of an export, read with pyarrow alone, in manifest order (manifest None: OUT's)."""
    manifest = manifest or json.loads((out / "manifest.json").read_text())
    tables = []
    for s in manifest["datasets"][dataset]["shards"]:
        with pa.memory_map(str(out / s["path"])) as src:
            tables.append(pa.ipc.open_file(src).read_all())
    return pa.concat_tables(tables)


def standardized(data_dir, name, split="train"):
    cfg = load_registry().datasets[name]
    return [standardize(e, cfg) for e in open_dataset(str(data_dir), cfg).episodes(split, keys=required_keys(cfg))]


@pytest.fixture(scope="module")
def bridge_run(bridge_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("bridge") / "out"
    assert (
        main(
            [
                "--mixture",
                "bridge",
                "--data-dir",
                str(bridge_root),
                "--out",
                str(out),
                "--no-depth",
                "--image-size",
                "64",
            ]
        )
        == 0
    )
    return out


def test_bridge_shards_match_the_source_by_hand(bridge_run, bridge_root):
    out = bridge_run
    manifest = verify_manifest(str(out))
    stats = json.loads((out / "dataset_statistics.json").read_text())["bridge_orig"]
    table = read_rows(out, manifest, "bridge_orig")
    episodes = standardized(bridge_root, "bridge_orig")
    assert table.num_rows == sum(e.num_steps for e in episodes) == 200
    raw = np.stack(table.column("raw_action").to_numpy(zero_copy_only=False))
    np.testing.assert_array_equal(raw, np.concatenate([e.action for e in episodes]))  # episode order kept
    action = np.stack(table.column("action").to_numpy(zero_copy_only=False))
    np.testing.assert_array_equal(action, normalize(raw, stats["action"]))
    grid = ActionGrid.load(str(out / manifest["grid"]))
    tokens = np.stack(table.column("action_tokens").to_numpy(zero_copy_only=False))
    np.testing.assert_array_equal(tokens, ActionTokenizer(grid).encode(action))
    # statistics against numpy on the same standardized actions
    a = np.concatenate([e.action for e in episodes]).astype(np.float64)
    for key, q in (("q01", 0.01), ("q99", 0.99)):
        assert np.all(
            np.abs(np.array(stats["action"][key]) - np.quantile(a, q, axis=0)) <= 1e-3 * np.ptp(a, axis=0) + 1e-12
        )
    np.testing.assert_allclose(stats["action"]["mean"], a.mean(0), rtol=1e-6, atol=1e-9)
    assert stats["num_trajectories"] == 25 and stats["num_transitions"] == 200
    # rows are episode-contiguous, steps numbered, first/last flagged
    ids = table.column("episode_id").to_pylist()
    steps = table.column("step").to_pylist()
    assert [i for i, s in zip(ids, steps) if s == 0] == [e.episode_id for e in episodes]
    assert sum(table.column("is_first").to_pylist()) == sum(table.column("is_last").to_pylist()) == 25
    from transforms.frames import decode

    assert decode(table.column("image")[0].as_py()).shape == (64, 64, 3)
    assert table.column("language_instruction")[0].as_py() == episodes[0].instruction


def test_bridge_manifest_and_report(bridge_run):
    manifest = json.loads((bridge_run / "manifest.json").read_text())
    assert manifest["weights"] == {"bridge_orig": 1.0} and manifest["effective_weights"] == {"bridge_orig": 1.0}
    intr = manifest["datasets"]["bridge_orig"]["intrinsics"]
    assert intr["width"] == 64 and intr["fx"] == pytest.approx(623.588 * 64 / 640)
    assert intr["cx"] == pytest.approx((319.501 + 0.5) * 64 / 640 - 0.5)
    report = json.loads((bridge_run / "report.json").read_text())
    assert report["datasets"]["bridge_orig"]["episodes_read"] == 25 and report["episodes_lost"] == 0
    assert not (bridge_run / ".work").exists()


def test_an_identical_rerun_is_up_to_date_and_byte_identical(bridge_run, bridge_root, capfd):
    before = file_hashes(bridge_run)
    assert (
        main(
            [
                "--mixture",
                "bridge",
                "--data-dir",
                str(bridge_root),
                "--out",
                str(bridge_run),
                "--no-depth",
                "--image-size",
                "64",
            ]
        )
        == 0
    )
    assert capfd.readouterr().out.startswith(f"up to date: {bridge_run}")  # nothing read, nothing written
    assert file_hashes(bridge_run) == before


def test_multi_process_runner_gives_identical_output(bridge_run, bridge_root, tmp_path):
    out = tmp_path / "mp"
    assert (
        main(
            [
                "--mixture",
                "bridge",
                "--data-dir",
                str(bridge_root),
                "--out",
                str(out),
                "--no-depth",
                "--image-size",
                "64",
                "--",
                "--direct_running_mode=multi_processing",
                "--direct_num_workers=2",
            ]
        )
        == 0
    )
    assert file_hashes(out) == file_hashes(bridge_run)


def test_every_dataset_end_to_end_on_the_sample_corpus(sample_corpus, tmp_path):
    out = tmp_path / "out"
    assert (
        main(
            [
                "--mixture",
                "oxe_spatial_vla_plus",
                "--data-dir",
                str(sample_corpus),
                "--out",
                str(out),
                "--no-depth",
                "--image-size",
                "32",
            ]
        )
        == 0
    )
    manifest = verify_manifest(str(out))
    assert len(manifest["datasets"]) == 28
    stats = json.loads((out / "dataset_statistics.json").read_text())
    for name in manifest["datasets"]:
        episodes = standardized(sample_corpus, name)
        table = read_rows(out, manifest, name)
        assert table.num_rows == sum(e.num_steps for e in episodes), name
        raw = np.stack(table.column("raw_action").to_numpy(zero_copy_only=False))
        np.testing.assert_array_equal(raw, np.concatenate([e.action for e in episodes]))
        np.testing.assert_array_equal(
            np.stack(table.column("action").to_numpy(zero_copy_only=False)), normalize(raw, stats[name]["action"])
        )
        a, s = raw.astype(np.float64), stats[name]["action"]  # statistics against numpy on the same steps
        np.testing.assert_allclose(s["mean"], a.mean(0), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(s["std"], a.std(0), rtol=1e-4, atol=1e-7)
        np.testing.assert_array_equal(s["min"], a.min(0))
        for key, q in (("q01", 0.01), ("q99", 0.99)):
            assert np.all(np.abs(np.array(s[key]) - np.quantile(a, q, axis=0)) <= 1e-3 * np.ptp(a, axis=0) + 1e-12), (
                name
            )
        assert ("wrist_image" in table.column_names) == manifest["datasets"][name]["has_wrist_image"]
    w = manifest["weights"]
    n = {k: manifest["datasets"][k]["num_transitions"] for k in w}
    total = sum(w[k] * n[k] for k in w)
    for k in w:
        assert manifest["effective_weights"][k] == pytest.approx(w[k] * n[k] / total)
    grid = json.loads((out / manifest["grid"]).read_text())
    assert set(grid["provenance"]["excluded"]) == {
        "language_table",
        "berkeley_fanuc_manipulation",
        "cmu_stretch",
        "jaco_play",
    }
    report = json.loads((out / "report.json").read_text())
    missing = [p for p in report["problems"] if p["reason"] == "missing instruction (kept)"]
    assert missing and all(p["episodes_lost"] == 0 for p in missing)  # flagged, counted, kept
