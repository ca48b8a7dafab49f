"""python -m sources.convert: a robot's own .npz and HDF5 episodes -> RLDS that TFDS's builder_from_directory
reads back exactly as given, that this pipeline's reader reads the same, and whose printed mixture entry
runs through the main job (per-step instructions kept)."""

import hashlib
import io
import json

import h5py
import numpy as np
import pytest
from PIL import Image

from manifests.registry import load_mixture_file, load_registry
from pipeline.run import main as run_main
from shards.schema import open_ipc
from sources.convert import main
from sources.rlds import RLDSDataset
from transforms.frames import encode_jpeg

rng = np.random.default_rng(11)


def npz_episodes(d, n=3):
    """Episodes with an RGB and a gray camera, an instruction that changes mid-episode, float64 state,
    a bool per step and an episode-wide scalar."""
    d.mkdir()
    eps = []
    for i in range(n):
        t = 6 + i
        ep = {
            "image": rng.integers(0, 256, (t, 24, 32, 3), dtype=np.uint8),
            "wrist": rng.integers(0, 256, (t, 24, 32), dtype=np.uint8),
            "action": rng.normal(0, 0.1, (t, 7)).astype(np.float32),
            "state": rng.normal(size=(t, 5)),
            "grasped": rng.random(t) > 0.5,
            "language_instruction": np.array(["pick up the cup"] * (t - 2) + ["place it on the shelf"] * 2),
            "success": np.array(i % 2),
        }
        ep["action"][:, 6] = (rng.random(t) > 0.3).astype(np.float32)
        np.savez(d / f"episode_{i:03d}.npz", **ep)
        eps.append(ep)
    return eps


def h5_episodes(d, n=2):
    """ALOHA-like files: groups, xyz + quaternion + gripper actions, frames as arrays and as JPEG bytes,
    one instruction for the whole episode."""
    d.mkdir()
    eps = []
    for i in range(n):
        t = 5 + i
        high = rng.integers(0, 256, (t, 24, 32, 3), dtype=np.uint8)
        low = [encode_jpeg(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)) for _ in range(t)]
        action = np.concatenate([rng.normal(0, 0.1, (t, 3)), np.tile([0, 0, 0, 1.0], (t, 1)), np.ones((t, 1))], 1)
        with h5py.File(d / f"ep{i}.hdf5", "w") as f:
            f["action"] = action
            f["observations/qpos"] = rng.normal(size=(t, 6)).astype(np.float32)
            f["observations/images/cam_high"] = high
            cam_low = f.create_dataset("observations/images/cam_low", (t,), dtype=h5py.vlen_dtype(np.uint8))
            for j, jpeg in enumerate(low):  # JPEG bytes as variable-length uint8 rows, as compressed ALOHA files
                cam_low[j] = np.frombuffer(jpeg, np.uint8)
            f["language_instruction"] = "fold the towel"
        eps.append({"action": action, "high": high, "low": low})
    return eps


def read_tfds(path, decoders=None):
    import tensorflow_datasets as tfds

    builder = tfds.builder_from_directory(str(path))
    episodes = []
    for ep in builder.as_dataset(split="train", decoders=decoders):
        episodes.append({"steps": list(ep["steps"].as_numpy_iterator()), "meta": tfds.as_numpy(ep["episode_metadata"])})
    return episodes


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    w = tmp_path_factory.mktemp("convert")
    eps = npz_episodes(w / "npz_eps")
    args = [str(w / "npz_eps"), "--name", "my_robot", "--out", str(w / "data"), "--control-hz", "12.5",
            "--wrist-image", "wrist", "--image-format", "png", "--mixture", str(w / "my_robot.yaml")]  # fmt: skip
    assert main(args) == 0
    return w, eps, args


def test_tfds_reads_back_exactly_what_was_given(converted):
    w, eps, _ = converted
    got = read_tfds(w / "data" / "my_robot" / "1.0.0")
    assert len(got) == len(eps)
    for ep, back in zip(eps, got):
        steps = back["steps"]
        assert len(steps) == len(ep["action"])
        np.testing.assert_array_equal(np.stack([s["image"] for s in steps]), ep["image"])  # PNG: lossless
        np.testing.assert_array_equal(np.stack([s["wrist"][..., 0] for s in steps]), ep["wrist"])
        np.testing.assert_array_equal(np.stack([s["action"] for s in steps]), ep["action"])
        np.testing.assert_array_equal(np.stack([s["state"] for s in steps]), ep["state"].astype(np.float32))
        np.testing.assert_array_equal([s["grasped"] for s in steps], ep["grasped"])
        assert [s["language_instruction"].decode() for s in steps] == list(ep["language_instruction"])
        assert [bool(s["is_first"]) for s in steps] == [i == 0 for i in range(len(steps))]
        assert [bool(s["is_last"]) for s in steps] == [i == len(steps) - 1 for i in range(len(steps))]
        assert back["meta"]["success"] == ep["success"]
    assert [b["meta"]["file_path"].decode() for b in got] == [f"episode_{i:03d}.npz" for i in range(3)]


def test_our_reader_reads_the_same(converted):
    w, eps, _ = converted
    ds = RLDSDataset(str(w / "data" / "my_robot" / "1.0.0"), "my_robot")
    episodes = list(ds.episodes("train"))
    for ep, raw in zip(eps, episodes, strict=True):
        np.testing.assert_array_equal(raw.steps["action"], ep["action"])
        np.testing.assert_array_equal(raw.steps["state"], ep["state"].astype(np.float32))
        assert [t.decode() for t in raw.steps["language_instruction"]] == list(ep["language_instruction"])
        frames = [np.asarray(Image.open(io.BytesIO(b))) for b in raw.steps["image"]]
        np.testing.assert_array_equal(np.stack(frames), ep["image"])


def test_the_mixture_entry_is_complete_and_loads(converted):
    w, eps, _ = converted
    name, weights, extra, roots = load_mixture_file(w / "my_robot.yaml", load_registry())
    cfg = extra["my_robot"]
    assert name == "my_robot" and weights == {"my_robot": 1.0}
    assert roots == {"my_robot": str(w / "data")}  # its own root: `pipeline.run --mixture` needs no --data-dir
    assert cfg.image_size == (24, 32) and cfg.control_hz == 12.5  # [height, width]
    assert (cfg.primary_image, cfg.wrist_image, cfg.instruction.key) == ("image", "wrist", "language_instruction")
    assert [p.key for p in cfg.proprio] == ["state"]
    assert cfg.action.translation.slice == (0, 3) and cfg.action.rotation.slice == (3, 6)
    assert cfg.action.gripper.slice == (6, 7) and cfg.gripper_convention == "absolute_open"
    i = cfg.intrinsics  # SpatialVLA's default camera scaled from 640x480 to 32x24
    assert (i.width, i.height, i.source) == (32, 24, "dataset")
    assert i.fx == pytest.approx(623.588 * 32 / 640, abs=1e-4) and i.cy == pytest.approx(
        239.545 / 20 - 0.5 + 0.025, abs=1e-3
    )
    assert "# [height, width]" in (w / "my_robot.yaml").read_text()


def test_the_same_episodes_give_the_same_bytes(converted, tmp_path):
    w, _, args = converted
    again = [a if a != str(w / "data") else str(tmp_path / "data") for a in args]
    again[again.index("--mixture") + 1] = str(tmp_path / "m.yaml")
    assert main(again) == 0

    def digest(root):
        return {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((root / "my_robot" / "1.0.0").iterdir())
        }

    assert digest(tmp_path / "data") == digest(w / "data")
    assert main(again) == 2  # it exists: --overwrite replaces it
    assert main([*again, "--overwrite"]) == 0


def test_the_main_job_keeps_every_step_s_instruction(converted, tmp_path):
    """Instructions that change mid-episode reach the shards step by step (not the first one for all)."""
    w, eps, _ = converted
    out = tmp_path / "out"
    assert run_main(["--mixture", str(w / "my_robot.yaml"), "--out", str(out), "--no-depth", "--image-size", "32"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    shards = manifest["datasets"]["my_robot"]["shards"]
    table = open_ipc(str(out / shards[0]["path"])).read_all()
    texts = [t for ep in eps for t in ep["language_instruction"]]
    assert table.column("language_instruction").to_pylist() == texts
    # the LeRobot view too: a task per frame, each episode listing its tasks in order
    import pyarrow.parquet as pq

    from shards.lerobot import main as lerobot_main

    assert lerobot_main([str(out), str(tmp_path / "lerobot")]) == 0
    root = tmp_path / "lerobot" / "my_robot"
    tasks = pq.read_table(root / "meta" / "tasks.parquet").to_pandas()
    names = {int(i): str(n) for n, i in zip(tasks.index, tasks["task_index"])}
    frames = pq.read_table(root / "data" / "chunk-000" / "file-000.parquet").column("task_index").to_pylist()
    assert [names[i] for i in frames] == texts
    episodes = pq.read_table(root / "meta" / "episodes" / "chunk-000" / "file-000.parquet").column("tasks").to_pylist()
    assert episodes == [["pick up the cup", "place it on the shelf"]] * len(eps)


def test_hdf5_episodes_with_groups_quaternions_and_encoded_frames(tmp_path):
    eps = h5_episodes(tmp_path / "h5")
    out = tmp_path / "data"
    assert main([str(tmp_path / "h5"), "--name", "aloha_like", "--out", str(out), "--control-hz", "50",
                 "--image", "observations/images/cam_high", "--intrinsics", "30,30,15.5,11.5",
                 "--mixture", str(tmp_path / "m.yaml")]) == 0  # fmt: skip
    raw = {"observations": {"images": {"cam_high": __import__("tensorflow_datasets").decode.SkipDecoding(),
                                       "cam_low": __import__("tensorflow_datasets").decode.SkipDecoding()}}}  # fmt: skip
    got = read_tfds(out / "aloha_like" / "1.0.0", decoders={"steps": raw})
    for ep, back in zip(eps, got, strict=True):
        steps = back["steps"]
        np.testing.assert_array_equal(np.stack([s["action"] for s in steps]), ep["action"].astype(np.float32))
        # frames given as arrays: stored as our JPEG encoder writes them; frames given as JPEG bytes: kept as is
        assert [s["observations"]["images"]["cam_high"] for s in steps] == [encode_jpeg(f) for f in ep["high"]]
        assert [s["observations"]["images"]["cam_low"] for s in steps] == ep["low"]
        assert {s["language_instruction"].decode() for s in steps} == {"fold the towel"}
    _, _, extra, _ = load_mixture_file(tmp_path / "m.yaml", load_registry())
    cfg = extra["aloha_like"]
    assert cfg.action.rotation.format == "quaternion" and cfg.action.rotation.slice == (3, 7)
    assert cfg.action.gripper.slice == (7, 8) and [p.key for p in cfg.proprio] == ["observations/qpos"]
    assert (cfg.intrinsics.fx, cfg.intrinsics.cx, cfg.intrinsics.width) == (30.0, 15.5, 32)


def test_inconsistent_episodes_are_refused_naming_file_and_key(tmp_path, capsys):
    d = tmp_path / "eps"
    d.mkdir()
    np.savez(d / "a.npz", image=np.zeros((4, 16, 16, 3), np.uint8), action=np.zeros((4, 7), np.float32))
    np.savez(d / "b.npz", image=np.zeros((4, 16, 16, 3), np.uint8), action=np.zeros((4, 6), np.float32))
    assert main([str(d), "--name", "r", "--out", str(tmp_path / "data"), "--control-hz", "5"]) == 2
    err = capsys.readouterr().err
    assert (
        f"error: {d / 'b.npz'}: 'action' is tensor float32[6], the first episode ({d / 'a.npz'}) has tensor float32[7]"
        in err
    )
    assert not (tmp_path / "data" / "r").exists()  # nothing half-written
    np.savez(d / "b.npz", image=np.zeros((5, 16, 16, 3), np.uint8), action=np.zeros((4, 7), np.float32))
    assert main([str(d), "--name", "r", "--out", str(tmp_path / "data"), "--control-hz", "5"]) == 2
    assert "'image' has 5 rows, the episode has 4 steps" in capsys.readouterr().err
