"""python -m shards.lerobot: LeRobot datasets (v3.0) from an export, read back by LeRobot's own loader.

LeRobot runs in a venv of its own (`lerobot_python`): lerobot 0.4.4 pins torch < 2.11, whose only builds
on the index are multi-GB CUDA ones, so that venv reuses this project's torch and torchvision through a
.pth file (pointing at a folder of links to them and their CUDA libraries) and installs lerobot with
--no-deps plus what its dataset module imports. Its video decoder, torchcodec (0.17: the build for torch
2.14; lerobot's own pin, < 0.11, was built for older torch), loads FFmpeg's shared libraries: those that
PyAV's wheel bundles in the same venv, reached through LD_LIBRARY_PATH (no system package needed).
The venv is built once per machine under .cache/ (keyed by every version involved).
"""

import hashlib
import importlib.metadata
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from shards.lerobot import CODEBASE_VERSION, main
from tests.pipeline.test_end_to_end import read_rows

ROOT = Path(__file__).resolve().parents[2]
LEROBOT = "lerobot==0.4.4"
# what lerobot.datasets.lerobot_dataset imports, in lerobot 0.4.4's own ranges (torchcodec aside: see above)
LEROBOT_DEPS = [
    "datasets>=4.0,<5",
    "accelerate>=1.10,<2",
    "av>=15,<16",
    "torchcodec==0.17.0",
    "huggingface-hub>=0.34.2,<0.36",
    "jsonlines>=4,<5",
    "pillow>=10,<13",
    "packaging>=24.2,<26",
]
VENV_RECIPE = 2  # bump when build_venv changes
SHARED = ("torch", "torchvision")  # reused from this venv, with triton and the CUDA packages they need


# ---------------------------------------------------------------- LeRobot's environment


def shared_entries() -> tuple[Path, list[str]]:
    """(our site-packages, the top-level entries of torch, torchvision, triton and the CUDA packages)."""
    site = Path(importlib.metadata.distribution("torch").locate_file(""))
    entries = set()
    for dist in importlib.metadata.distributions(path=[str(site)]):
        name = dist.metadata["Name"].lower().replace("_", "-")
        if name in (*SHARED, "triton") or name.startswith(("nvidia-", "cuda-")):
            entries |= {f.parts[0] for f in dist.files or [] if f.parts[0] != ".."}
    return site, sorted(entries)


def venv_key() -> str:
    versions = [VENV_RECIPE, sys.version, LEROBOT, *LEROBOT_DEPS, *(importlib.metadata.version(p) for p in SHARED)]
    return hashlib.sha256(json.dumps(versions).encode()).hexdigest()[:12]


def build_venv(venv: Path) -> None:
    import shutil

    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    site, entries = shared_entries()
    shared = venv / "shared-torch"
    shared.mkdir()
    for entry in entries:
        (shared / entry).symlink_to(site / entry)
    (purelib / "zz_shared_torch.pth").write_text(f"{shared}\n")  # after the venv's own packages on sys.path
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-warn-conflicts"]
    subprocess.run([*pip, "--no-deps", LEROBOT], check=True)
    subprocess.run([*pip, *LEROBOT_DEPS], check=True)  # torch is seen as installed: pip adds its pure deps
    # torchcodec dlopens libavutil.so.N etc.: links by those names to the copies PyAV bundles (av.libs)
    libs = venv / "ffmpeg-libs"
    libs.mkdir()
    for lib in (purelib / "av.libs").glob("lib*"):
        m = re.match(r"(libav\w+|libsw\w+)-[0-9a-f]+\.so\.(\d+)", lib.name)
        if m:
            (libs / f"{m.group(1)}.so.{m.group(2)}").symlink_to(lib)
    (venv / "COMPLETE").write_text(venv_key())


@pytest.fixture(scope="session")
def lerobot_python():
    """A function running a Python script in LeRobot's venv (built here on first use), in a directory."""
    venv = ROOT / ".cache" / f"lerobot-venv-{venv_key()}"
    if not (venv / "COMPLETE").exists():
        build_venv(venv)
    purelib = next((venv / "lib").glob("python*/site-packages"))

    def run(script: str, cwd: Path, *args: str) -> str:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env.update(
            LD_LIBRARY_PATH=f"{venv / 'ffmpeg-libs'}:{purelib / 'av.libs'}",
            HF_HOME=str(cwd / ".hf"),  # the loader's datasets cache, not the user's
            HF_HUB_OFFLINE="1",  # a local dataset: nothing may be fetched
        )
        r = subprocess.run(
            [str(venv / "bin" / "python"), "-c", script, *args], cwd=cwd, env=env, capture_output=True, text=True
        )
        assert r.returncode == 0, r.stderr[-4000:]
        return r.stdout

    return run


# ---------------------------------------------------------------- the export and what it should give


def convert(out: Path, dest: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run(
        [sys.executable, "-m", "shards.lerobot", str(out), str(dest), *args], capture_output=True, text=True, env=env
    )


def matrix(table: pa.Table, column: str) -> np.ndarray:
    return np.stack(table.column(column).to_numpy(zero_copy_only=False))


def decoded(table: pa.Table, column: str) -> np.ndarray:
    return np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in table.column(column).to_pylist()])


def expected(out: Path, name: str) -> dict:
    """What the LeRobot dataset of one exported dataset must hold, computed from the shards by hand."""
    table = read_rows(out, None, name)
    manifest = json.loads((out / "manifest.json").read_text())
    fps = manifest["datasets"][name]["control_hz"]
    ids, steps = table.column("episode_id").to_pylist(), np.asarray(table.column("step").to_pylist())
    starts = np.flatnonzero(steps == 0)
    episode = np.cumsum(steps == 0) - 1
    instructions = table.column("language_instruction").to_pylist()
    tasks = list(dict.fromkeys(instructions[s] for s in starts))
    out_ = {
        "action": matrix(table, "raw_action"),
        "timestamp": (steps / fps).astype(np.float32),
        "frame_index": steps,
        "episode_index": episode,
        "index": np.arange(len(steps)),
        "task_index": np.array([tasks.index(instructions[i]) for i in range(len(steps))]),
        "tasks": tasks,
        "task": instructions,
        "starts": starts,
        "ends": np.append(starts[1:], len(steps)),
        "fps": fps,
        "episode_ids": [ids[s] for s in starts],
    }
    if "proprio" in table.column_names:
        out_["observation.state"] = matrix(table, "proprio")
    for camera in ("image", "wrist_image"):
        if camera in table.column_names:
            out_[f"observation.images.{camera}"] = decoded(table, camera)
    return out_


def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per frame, over all but the first axis of [N, ...] uint8 arrays."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(len(a), -1).mean(1)
    return 10 * np.log10(255.0**2 / np.maximum(mse, 1e-12))


def read_parquets(root: Path, folder: str) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in sorted((root / folder).glob("chunk-*/file-*.parquet"))])


@pytest.fixture(scope="module")
def bridge_lerobot(bridge_export, tmp_path_factory):
    dest = tmp_path_factory.mktemp("lerobot") / "bridge"
    r = convert(bridge_export, dest)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("\n") == 1 and "bridge_orig: 25 episode(s), 200 frame(s)" in r.stderr
    return dest / "bridge_orig"


# ---------------------------------------------------------------- the files, read by hand


def test_bridge_files_hold_the_export_exactly(bridge_lerobot, bridge_export):
    exp = expected(bridge_export, "bridge_orig")
    info = json.loads((bridge_lerobot / "meta/info.json").read_text())
    assert info["codebase_version"] == CODEBASE_VERSION == "v3.0"
    assert (info["fps"], info["total_episodes"], info["total_frames"], info["total_tasks"]) == (5, 25, 200, 4)
    assert info["splits"] == {"train": "0:25"} and info["chunks_size"] == 1000
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    features = info["features"]
    assert list(features) == [
        "action",
        "observation.state",
        "observation.images.image",
        "timestamp",
        "frame_index",
        "episode_index",
        "index",
        "task_index",
    ]
    assert not any("/" in k for k in features)
    image = features["observation.images.image"]
    assert image["dtype"] == "video" and image["shape"] == [224, 224, 3] and image["names"][-1] == "channels"
    assert image["info"]["video.fps"] == 5 and image["info"]["video.codec"] == "h264"

    tasks = pq.read_table(bridge_lerobot / "meta/tasks.parquet").to_pandas()
    assert list(tasks.index) == exp["tasks"] and list(tasks["task_index"]) == list(range(len(exp["tasks"])))

    data = read_parquets(bridge_lerobot, "data")
    np.testing.assert_array_equal(matrix(data, "action"), exp["action"])  # raw, not our normalized action
    np.testing.assert_array_equal(matrix(data, "observation.state"), exp["observation.state"])
    assert data.schema.field("timestamp").type == pa.float32()
    for key in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        np.testing.assert_array_equal(data.column(key).to_numpy(), exp[key], err_msg=key)

    episodes = read_parquets(bridge_lerobot, "meta/episodes").to_pylist()
    assert [e["episode_index"] for e in episodes] == list(range(25))
    assert [e["dataset_from_index"] for e in episodes] == exp["starts"].tolist()
    assert [e["dataset_to_index"] for e in episodes] == exp["ends"].tolist()
    assert [e["length"] for e in episodes] == (exp["ends"] - exp["starts"]).tolist()
    assert [e["tasks"] for e in episodes] == [[exp["task"][s]] for s in exp["starts"]]
    key = "videos/observation.images.image"
    assert all(e[f"{key}/chunk_index"] == e[f"{key}/file_index"] == 0 for e in episodes)  # 0.7 MB: one file
    np.testing.assert_allclose([e[f"{key}/from_timestamp"] for e in episodes], exp["starts"] / 5, atol=1e-12)
    np.testing.assert_allclose([e[f"{key}/to_timestamp"] for e in episodes], exp["ends"] / 5, atol=1e-12)
    e = episodes[7]
    rows = slice(e["dataset_from_index"], e["dataset_to_index"])
    np.testing.assert_allclose(e["stats/action/q50"], np.quantile(exp["action"][rows], 0.5, axis=0), atol=1e-7)
    frames = exp["observation.images.image"][rows]
    np.testing.assert_allclose(np.ravel(e["stats/observation.images.image/mean"]), frames.mean((0, 1, 2)) / 255)
    assert e["stats/observation.images.image/count"] == [e["length"]]


def test_bridge_statistics_are_the_exports_and_exact_for_images(bridge_lerobot, bridge_export):
    exp = expected(bridge_export, "bridge_orig")
    ours = json.loads((bridge_export / "dataset_statistics.json").read_text())["bridge_orig"]
    stats = json.loads((bridge_lerobot / "meta/stats.json").read_text())
    for feature, source, entry in (
        ("action", "action", ours["action"]),
        ("observation.state", "observation.state", ours["proprio"]),
    ):
        s = stats[feature]
        assert set(s) == {"min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"}
        for key in ("min", "max", "mean", "std", "q01", "q99"):
            assert s[key] == entry[key], (feature, key)  # ours, as the export's normalization used them
        assert s["count"] == [ours["num_transitions"]]
        x = exp[source].astype(np.float64)
        for key, q in (("q10", 0.1), ("q50", 0.5), ("q90", 0.9)):  # our log-linear histogram: 2^-12 relative
            exact = np.quantile(x, q, axis=0)
            assert np.all(np.abs(np.array(s[key]) - exact) <= 2.5e-4 * np.abs(x).max(0) + 1e-12), (feature, key)
    frames = exp["observation.images.image"].reshape(-1, 3).astype(np.float64)
    s = {k: np.array(v) for k, v in stats["observation.images.image"].items()}
    assert all(v.shape == (3, 1, 1) for k, v in s.items() if k != "count") and s["count"].tolist() == [200]
    np.testing.assert_allclose(s["mean"].ravel(), frames.mean(0) / 255, rtol=1e-12)
    np.testing.assert_allclose(s["std"].ravel(), frames.std(0) / 255, rtol=1e-9)
    np.testing.assert_array_equal(s["min"].ravel(), frames.min(0) / 255)
    for key, q in (("q01", 0.01), ("q50", 0.5), ("q99", 0.99)):
        np.testing.assert_allclose(s[key].ravel(), np.quantile(frames, q, axis=0) / 255, rtol=1e-12)
    for key in ("frame_index", "index"):
        assert stats[key]["mean"] == pytest.approx([exp[key].mean()]) and stats[key]["max"] == [exp[key].max()]


def test_bridge_video_frames_at_their_timestamps(bridge_lerobot, bridge_export):
    import av

    exp = expected(bridge_export, "bridge_orig")
    with av.open(str(bridge_lerobot / "videos/observation.images.image/chunk-000/file-000.mp4")) as c:
        stream = c.streams.video[0]
        assert stream.average_rate == 5 and stream.codec_context.name == "h264"
        decoded_frames = [(float(f.pts * f.time_base), f.to_ndarray(format="rgb24")) for f in c.decode(stream)]
    assert [t for t, _ in decoded_frames] == pytest.approx(np.arange(200) / 5, abs=1e-9)  # constant rate
    quality = psnr(np.stack([f for _, f in decoded_frames]), exp["observation.images.image"])
    assert quality.min() >= 37.0, quality.min()  # LeRobot's own AV1 crf 30 gives 35.7 dB here


def test_av1_video(bridge_export, tmp_path):
    import av

    r = convert(bridge_export, tmp_path, "--codec", "av1")
    assert r.returncode == 0, r.stderr
    info = json.loads((tmp_path / "bridge_orig/meta/info.json").read_text())
    assert info["features"]["observation.images.image"]["info"]["video.codec"] == "av1"
    with av.open(str(tmp_path / "bridge_orig/videos/observation.images.image/chunk-000/file-000.mp4")) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.codec.id == av.codec.Codec("av1", "r").id and stream.average_rate == 5
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(stream)])
    assert psnr(frames, expected(bridge_export, "bridge_orig")["observation.images.image"]).min() >= 37.0


def test_rerun_gives_the_same_bytes(bridge_lerobot, bridge_export, tmp_path):
    r = convert(bridge_export, tmp_path)
    assert r.returncode == 0, r.stderr

    def hashes(root):
        return {
            str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
        }

    assert hashes(tmp_path / "bridge_orig") == hashes(bridge_lerobot)


# ---------------------------------------------------------------- LeRobot's own loader


LOAD = r"""
import json, sys
import numpy as np, torch
from lerobot.datasets.lerobot_dataset import LeRobotDataset

root, name, expected_dir, out = sys.argv[1:5]
ds = LeRobotDataset(name, root=root)
cams = ds.meta.camera_keys
want = {c: np.load(f"{expected_dir}/{c}.npy") for c in cams}

def psnr(a, b):
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean()
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))

def pixels(t):  # float [3, H, W] in [0, 1] -> uint8 [H, W, 3]
    return (t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)

result = {}
# the DataLoader first: LeRobot's video decoders, once opened in this process, must not be shared with
# forked workers (their note in video_utils)
loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=2)
batches = list(loader)
result["loader/index"] = torch.cat([b["index"] for b in batches]).tolist()
result["loader/action"] = torch.cat([b["action"] for b in batches]).tolist()
result["loader/task"] = [t for b in batches for t in b["task"]]
result["loader/psnr"] = [psnr(pixels(img), want[cams[0]][int(i)]) for b in batches for img, i in zip(b[cams[0]], b["index"])]

keys = [k for k in ("action", "observation.state", "timestamp", "frame_index", "episode_index", "index", "task_index") if k in ds.features]
result.update({k: [] for k in keys})
result["task"], result["fps"], result["len"] = [], ds.fps, len(ds)
result["features"] = {k: {"dtype": v["dtype"], "shape": list(v["shape"])} for k, v in ds.features.items()}
for c in cams:
    result[c + "/psnr"] = []  # against the expected frames i - 1, i, i + 1
for i in range(len(ds)):
    item = ds[i]
    for k in keys:
        result[k].append(item[k].numpy().tolist())
    result["task"].append(item["task"])
    for c in cams:
        img = pixels(item[c])
        result[c + "/psnr"].append([psnr(img, want[c][j]) if 0 <= j < len(ds) else None for j in (i - 1, i, i + 1)])


window = {"action": [k / ds.fps for k in range(4)], cams[0]: [-1 / ds.fps, 0.0]}
chunked = LeRobotDataset(name, root=root, delta_timestamps=window)
result["chunk/action"], result["chunk/action_is_pad"], result["chunk/psnr"], result["chunk/image_is_pad"] = [], [], [], []
for i in range(len(chunked)):
    item = chunked[i]
    result["chunk/action"].append(item["action"].numpy().tolist())
    result["chunk/action_is_pad"].append(item["action_is_pad"].tolist())
    result["chunk/image_is_pad"].append(item[cams[0] + "_is_pad"].tolist())
    result["chunk/psnr"].append([psnr(pixels(img), want[cams[0]][j]) for img, j in zip(item[cams[0]], (max(i - 1, int(item["index"]) - int(item["frame_index"])), i))])
json.dump(result, open(out, "w"))
"""


def load_with_lerobot(lerobot_python, root: Path, name: str, exp: dict, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    for key, frames in exp.items():
        if key.startswith("observation.images."):
            np.save(work / f"{key}.npy", frames)
    lerobot_python(LOAD, work, str(root), name, str(work), str(work / "result.json"))
    return json.loads((work / "result.json").read_text())


def check_loaded(got: dict, exp: dict, min_psnr: float) -> None:
    """Indices, timestamps, tasks and actions exact; frames by PSNR, each nearest its own frame."""
    n = len(exp["index"])
    assert got["len"] == n and got["fps"] == exp["fps"]
    for key in ("action", "observation.state"):
        if key in exp:
            np.testing.assert_array_equal(np.array(got[key], np.float32), exp[key], err_msg=key)
    for key in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        np.testing.assert_array_equal(np.array(got[key]), exp[key], err_msg=key)
    assert got["task"] == exp["task"]
    cameras = [k for k in exp if k.startswith("observation.images.")]
    assert sorted(k for k, v in got["features"].items() if v["dtype"] == "video") == sorted(cameras)
    for camera in cameras:
        scores = np.array(got[f"{camera}/psnr"], dtype=float)  # [n, 3]: frames i - 1, i, i + 1 (nan: none)
        assert scores[:, 1].min() >= min_psnr, (camera, scores[:, 1].min())
        # never a neighbouring frame: closer to its own frame than to any neighbour that differs from it
        frames = exp[camera]
        apart = psnr(frames[1:], frames[:-1]) < min_psnr  # frame k and k + 1 differ more than the codec's noise
        assert np.all(scores[1:, 1][apart] > scores[1:, 0][apart]) and np.all(
            scores[:-1, 1][apart] > scores[:-1, 2][apart]
        )
        assert apart.mean() > 0.5, camera  # the check covers most frames
    # a torch DataLoader with 2 workers over every item, in order
    assert got["loader/index"] == list(range(n)) and got["loader/task"] == exp["task"]
    np.testing.assert_array_equal(np.array(got["loader/action"], np.float32), exp["action"])
    assert min(got["loader/psnr"]) >= min_psnr
    # delta_timestamps: the next 4 actions within the episode (LeRobot repeats the last one, marked padding)
    # and the previous frame (the first frame repeated before the episode's start)
    episode = exp["episode_index"]
    for i in range(n):
        start, end = exp["starts"][episode[i]], exp["ends"][episode[i]]
        rows = np.clip(i + np.arange(4), start, end - 1)
        np.testing.assert_array_equal(np.array(got["chunk/action"][i], np.float32), exp["action"][rows])
        assert got["chunk/action_is_pad"][i] == (i + np.arange(4) >= end).tolist()
        assert got["chunk/image_is_pad"][i] == [i - 1 < start, False]
    assert min(min(p) for p in got["chunk/psnr"]) >= min_psnr


@pytest.mark.slow  # LeRobot's venv (built once per machine) and its loader in a process of its own
def test_lerobot_loads_the_bridge_export(lerobot_python, bridge_lerobot, bridge_export, tmp_path):
    exp = expected(bridge_export, "bridge_orig")
    got = load_with_lerobot(lerobot_python, bridge_lerobot, "bridge_orig", exp, tmp_path / "work")
    check_loaded(got, exp, min_psnr=37.0)
    assert got["features"]["observation.images.image"]["shape"] == [224, 224, 3]


@pytest.mark.slow  # LeRobot's venv (built once per machine) and its loader in a process of its own
def test_lerobot_loads_a_sample_export_with_a_wrist_camera_and_proprio(lerobot_python, sample_export, tmp_path):
    r = convert(sample_export, tmp_path / "lerobot")
    assert r.returncode == 0, r.stderr
    manifest = json.loads((sample_export / "manifest.json").read_text())
    assert sorted(p.name for p in (tmp_path / "lerobot").iterdir()) == sorted(manifest["datasets"])
    for name in manifest["datasets"]:
        exp = expected(sample_export, name)
        got = load_with_lerobot(lerobot_python, tmp_path / "lerobot" / name, name, exp, tmp_path / "work" / name)
        check_loaded(got, exp, min_psnr=35.0)
        info = json.loads((tmp_path / "lerobot" / name / "meta/info.json").read_text())
        assert info["fps"] == {"dobbe": 3.75, "taco_play": 15, "fractal20220817_data": 3, "roboturk": 10}[name]
        state = {"dobbe": 7, "taco_play": 7, "fractal20220817_data": 8, "roboturk": None}[name]
        assert got["features"].get("observation.state", {}).get("shape") == ([state] if state else None), name
        assert ("observation.images.wrist_image" in got["features"]) == (name == "taco_play")


# ---------------------------------------------------------------- refusals


def test_refusals_are_one_line_with_exit_2(bridge_export, bridge_lerobot, tmp_path):
    dest = bridge_lerobot.parent
    cases = [
        ((bridge_export, dest), "exists (--overwrite replaces it)"),
        ((bridge_export, tmp_path, "--datasets", "nope"), "no dataset(s) ['nope']"),
        ((tmp_path / "missing", tmp_path), "no manifest"),
        ((bridge_export, tmp_path, "--crf", "x"), "invalid int value"),
    ]
    for args, message in cases:
        r = convert(*args)
        assert r.returncode == 2 and message in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    # a shard that changed since the export: refused before anything is written
    changed = tmp_path / "changed"
    import shutil

    shutil.copytree(bridge_export, changed)
    shard = next((changed / "shards" / "bridge_orig").glob("*.arrow"))
    shard.write_bytes(shard.read_bytes() + b"x")
    r = convert(changed, tmp_path / "out")
    assert r.returncode == 2 and "changed" in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "out" / "bridge_orig").exists()
    # --overwrite replaces a dataset
    r = convert(bridge_export, dest, "--overwrite")
    assert r.returncode == 0 and (dest / "bridge_orig" / "meta/info.json").exists()


def test_odd_frame_sizes_are_refused(bridge_root, tmp_path, capsys):
    from pipeline.run import main as run

    out = tmp_path / "odd"
    assert run(["--mixture", "bridge", "--data-dir", str(bridge_root), "--out", str(out), "--no-depth",
                "--image-size", "33", "--max-episodes", "2"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main([str(out), str(tmp_path / "lerobot")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "frames of 33x33 pixels; yuv420p video needs an even width and height" in err
    assert not (tmp_path / "lerobot" / "bridge_orig").exists() and not list((tmp_path / "lerobot").iterdir())


# ---------------------------------------------------------------- the README, as written


def readme_blocks(section: str) -> list[tuple[str, str]]:
    """(language, code) of the fenced blocks under a '## ' heading of README.md."""
    text = (ROOT / "README.md").read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(\w*)\n(.*?)```", body, re.S)


@pytest.mark.slow  # LeRobot's venv (built once per machine) and its loader in a process of its own
def test_readme_train_with_lerobot_runs_as_written(lerobot_python, bridge_export, tmp_path):
    blocks = readme_blocks("Train with LeRobot")
    shell = [line for lang, code in blocks if lang == "" for line in code.splitlines() if line.strip()]
    python = [code for lang, code in blocks if lang == "python"]
    assert shell and len(python) == 1
    (tmp_path / "output").mkdir()
    (tmp_path / "output" / "bridge").symlink_to(bridge_export)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    for line in shell:
        assert line.startswith("python -m shards.lerobot "), line
        command = line.split("#")[0].split()
        r = subprocess.run([sys.executable, *command[1:]], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    check = "\nprint(len(ds), item['observation.images.image'].shape, tuple(batch['action'].shape), item['task'])\n"
    out = lerobot_python(python[0] + check, tmp_path).strip().splitlines()[-1]
    task = read_rows(bridge_export, None, "bridge_orig").column("language_instruction")[0].as_py()
    assert out == f"200 torch.Size([3, 224, 224]) (8, 4, 7) {task}"
