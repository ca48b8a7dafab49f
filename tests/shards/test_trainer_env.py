"""The trainer side in the trainers' own environments: `pip install '.[trainer]'` beside SpatialVLA's and
OpenVLA's pins, from PyPI, on a fresh machine.

What runs, exactly:
- resolution on Python 3.10 (`pip install --dry-run --report`, metadata only): SpatialVLA's pins
  (requirements.txt: torch 2.5.1, torchvision 0.20.1, numpy 1.26.4, transformers 4.47.0, datasets 3.0.2,
  tensorflow 2.15.0, tensorflow-datasets 4.9.3, ...) and OpenVLA's (pyproject.toml: torch 2.2.0,
  torchvision 0.17.0, transformers 4.40.1, ...), each with the project's `[trainer]` extra: pip must find
  one solution that keeps every pin, with no Beam, no tensorflow-cpu and no second torch;
- the trainer modules on a real Python 3.10 with numpy 1.26.4 and datasets 3.0.2's pyarrow and fsspec:
  every module of storage/, manifests/, transforms/, shards/ compiled by 3.10, the torch-free ones
  imported and run on an export (the rest need torch, whose PyPI builds for 3.10 are multi-GB CUDA
  wheels); `vermin` finds no 3.11-only syntax or standard library in any of them;
- SpatialVLA's environment built for real and the trainer side installed into it with pip, then
  `build_datasets` run there with their data_args. Their torch 2.5.1 is a multi-GB CUDA build on PyPI, so
  this environment reuses ours (torch 2.14.1, torchvision 0.29.1 and their CUDA libraries, linked through
  a `.pth` file): that forces its Python to be ours, 3.11; pip sees that torch as installed and must not
  replace it. Every other pin of theirs that installs from PyPI is installed (left out: deepspeed,
  flash-attn, triton 3.1.0, torchaudio and peft, which need their torch or CUDA; dlimp, a git URL;
  tensorflow-graphics and tensorflow-io, which nothing of ours meets).

The environments are cached under `.venv-trainer/` in the checkout, keyed by the pins, so a second run on
one machine only reinstalls the project. Measured on this project's 2-core machine while shared with other
jobs: built with an empty pip cache, the Python 3.10 environment 24 s and SpatialVLA's 158 s (2.4 GB,
TensorFlow 2.15 included); the two resolutions, run at once, 111 s; the rest ~35 s. So ~5.5 minutes on a
fresh machine, ~2.5 on a second run (the resolutions ask PyPI every time).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.shards.test_lerobot import shared_entries

pytestmark = pytest.mark.slow

TRAINER_ROOMS = ("storage", "manifests", "transforms", "shards")
# SpatialVLA's requirements.txt (the pins that install from PyPI and matter to a trainer's imports)
SPATIALVLA_PINS = [
    "numpy==1.26.4",
    "pillow==11.0.0",
    "scipy==1.14.1",
    "transformers==4.47.0",
    "tokenizers==0.21.0",
    "accelerate==1.0.1",
    "einops==0.8.0",
    "tqdm==4.66.6",
    "datasets==3.0.2",
    # their requirements leave pyarrow open; pyarrow 26 needs NumPy 2 (`import datasets` fails beside their
    # numpy 1.26.4), so a working environment of theirs has an earlier one: this, from datasets 3.0.2's time
    "pyarrow==18.1.0",
    "tensorflow==2.15.0",
    "tensorflow-datasets==4.9.3",
]
SPATIALVLA_TORCH = ["torch==2.5.1", "torchvision==0.20.1"]
# OpenVLA's pyproject.toml (pinned ones; timm and peft pin versions that need their torch: included)
OPENVLA_PINS = [
    "torch==2.2.0",
    "torchvision==0.17.0",
    "transformers==4.40.1",
    "tokenizers==0.19.1",
    "timm==0.9.10",
    "peft==0.11.1",
    "sentencepiece==0.1.99",
    "draccus==0.8.0",
    "tensorflow==2.15.0",
    "tensorflow-datasets==4.9.3",
]
# and xxhash, which datasets 3.0.2 requires too: the shards' checksums (shards.integrity)
DATASETS_3_0_2_ARROW = [
    "numpy==1.26.4",
    "pyarrow==15.0.0",
    "fsspec==2024.6.1",
    "pillow==11.0.0",
    "pyyaml==6.0.2",
    "xxhash==3.5.0",
]
FORBIDDEN = {"apache-beam", "tensorflow-cpu"}
VENVS = ROOT / ".venv-trainer"


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def python310() -> str:
    """A working Python 3.10 (pyenv's shim on PATH may point nowhere, so each candidate is run)."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [*map(str, sorted(pyenv.glob("versions/3.10*/bin/python3.10"))), shutil.which("python3.10")]
    for candidate in filter(None, candidates):
        done = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True)
        if done.returncode == 0 and done.stdout.strip() == b"(3, 10)":
            return candidate
    pytest.skip("no Python 3.10 on this machine")


def run(cmd: list[str], timeout: int = 1800, **kwargs) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, env=env, **kwargs)
    if done.returncode:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done


def project_copy(dest: Path) -> Path:
    """The project as pip installs it, copied so that its build writes nothing into the checkout."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "pyproject.toml", dest)
    for room in (
        "storage",
        "manifests",
        "transforms",
        "sources",
        "shards",
        "depth",
        "grids",
        "beam_jobs",
        "pipeline",
        "bench",
    ):
        shutil.copytree(ROOT / room, dest / room, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def key_of(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def cached_venv(name: str, python: str, pins: list[str], link_our_torch: bool) -> Path:
    """A virtual environment with `pins` installed, built once per machine (keyed by its recipe)."""
    recipe = [python, pins, link_our_torch and importlib.metadata.version("torch"), 2]  # 2: bump on a change here
    venv = VENVS / f"{name}-{key_of(*recipe)}"
    bin_python = venv / "bin" / "python"
    if (venv / ".complete").exists():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    run([python, "-m", "venv", venv])
    if link_our_torch:  # ours, through a .pth: the venv's site-packages come first, then these
        linked = venv / "our-torch"
        linked.mkdir()
        site, entries = shared_entries()  # the same links as LeRobot's environment (tests/shards/test_lerobot.py)
        for entry in entries:
            (linked / entry).symlink_to(site / entry)
        site = run([bin_python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
        Path(site, "our_torch.pth").write_text(f"{linked}\n")
    run([bin_python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    run([bin_python, "-m", "pip", "install", "--quiet", *pins])
    (venv / ".complete").write_text(json.dumps(recipe))
    return venv


def frozen(venv: Path) -> dict[str, str]:
    out = run([venv / "bin" / "python", "-m", "pip", "list", "--format", "json"]).stdout
    return {canonical(p["name"]): p["version"] for p in json.loads(out)}


# ------------------------------------------------------------ resolution on Python 3.10


def test_trainer_extra_resolves_with_their_pins_on_python_310(tmp_path):
    """Both resolutions at once (each mostly waits on PyPI's metadata)."""
    project = project_copy(tmp_path / "project")
    resolver = cached_venv("py310", python310(), DATASETS_3_0_2_ARROW, link_our_torch=False) / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    jobs = {}
    for name, pins in {"spatialvla": SPATIALVLA_PINS + SPATIALVLA_TORCH, "openvla": OPENVLA_PINS}.items():
        report = tmp_path / f"{name}.json"
        # the venv's pip, upgraded: the pip of a Python 3.10 install may be too old to resolve this in time
        cmd = [resolver, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report", report]
        cmd += [*pins, f"{project}[trainer]"]
        process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        jobs[name] = (pins, report, process)
    for name, (pins, report, process) in jobs.items():
        output = process.communicate(timeout=1800)[0]
        assert process.returncode == 0, f"{name}: {output[-3000:]}"
        chosen = {}
        for item in json.loads(report.read_text())["install"]:
            package = canonical(item["metadata"]["name"])
            assert package not in chosen, f"{name}: {package} twice"
            chosen[package] = item["metadata"]["version"]
        for pin in pins:
            package, version = pin.split("==")
            assert chosen[canonical(package)] == version, f"{name}: {pin}"  # every pin of theirs kept
        assert not FORBIDDEN & set(chosen), f"{name}: {sorted(FORBIDDEN & set(chosen))}"
        assert chosen["spatial-action-pipeline"] and "torchdata" in chosen and "xxhash" in chosen, name


# ------------------------------------------------------------ the modules on Python 3.10 with numpy 1.26


def test_trainer_modules_need_nothing_newer_than_python_310():
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from vermin.main import main; sys.exit(main())"]
        + ["--target=3.10-", "--no-tips", "--violations", "--eval-annotations"]
        + [str(ROOT / room) for room in TRAINER_ROOMS],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


PY310_CHECK = textwrap.dedent(
    """
    import compileall, importlib, json, pkgutil, sys
    import numpy as np
    rooms = sys.argv[1].split(",")
    compiled = all(compileall.compile_dir(r, quiet=1, force=True) for r in rooms)
    imported, need_torch = [], []
    for room in rooms:
        for m in pkgutil.iter_modules([room]):
            name = f"{room}.{m.name}"
            try:
                importlib.import_module(name)
                imported.append(name)
            except ModuleNotFoundError as e:
                if e.name not in ("torch", "torchvision"):
                    raise
                need_torch.append(name)
    # the torch-free parts at work on an export: its manifest, shards, weights, normalization
    from manifests.weights import effective_weights
    from shards.manifest import verify_manifest
    from shards.schema import open_ipc
    from transforms.normalize import normalize, unnormalize
    from storage.jsonio import read_json
    out = sys.argv[2]
    manifest = verify_manifest(out)
    stats = read_json(out + "/dataset_statistics.json")
    rows, roundtrip = 0, 0.0
    for name, ds in manifest["datasets"].items():
        for s in ds["shards"]:
            table = open_ipc(out + "/" + s["path"], ["action", "raw_action"]).read_all()
            raw = np.array(table.column("raw_action").to_pylist(), np.float32)
            got = normalize(raw, stats[name]["action"])
            assert np.array_equal(got, np.array(table.column("action").to_pylist(), np.float32)), name
            rows += table.num_rows
    weights = effective_weights(manifest["weights"], {n: d["num_transitions"] for n, d in manifest["datasets"].items()}, True)
    print(json.dumps({"python": sys.version_info[:2], "numpy": np.__version__, "compiled": compiled,
                      "imported": imported, "need_torch": need_torch, "rows": rows, "weights": weights}))
    """
)


def test_trainer_modules_run_on_python_310_with_numpy_1_26(tmp_path, bridge_export):
    venv = cached_venv("py310", python310(), DATASETS_3_0_2_ARROW, link_our_torch=False)
    export = bridge_export  # a real export: its actions normalized by numpy 2 here, again by numpy 1.26 there
    work = tmp_path / "code"  # a copy: compileall writes __pycache__
    for room in TRAINER_ROOMS:
        shutil.copytree(ROOT / room, work / room, ignore=shutil.ignore_patterns("__pycache__"))
    script = work / "check.py"  # beside the rooms: its folder is the first entry of sys.path
    script.write_text(PY310_CHECK)
    done = run([venv / "bin" / "python", script, ",".join(TRAINER_ROOMS), export], cwd=work)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["python"] == [3, 10] and result["numpy"] == "1.26.4" and result["compiled"]
    assert result["rows"] == 200 and result["weights"] == {"bridge_orig": 1.0}
    # torch only where the trainer needs it: the reader and the trainer adapters
    assert set(result["need_torch"]) <= {
        f"shards.{m}" for m in ("reader", "spatialvla", "standin_processor", "augment", "openvla", "lerobot")
    }
    assert {"storage.files", "manifests.weights", "transforms.normalize", "shards.manifest", "shards.schema"} <= set(
        result["imported"]
    )


# ------------------------------------------------------------ SpatialVLA's environment, for real


SPATIALVLA_RUN = textwrap.dedent(
    """
    import dataclasses, json, sys
    from typing import Optional
    import numpy as np, torch, transformers, datasets
    from shards.standin_processor import StandInProcessor

    namespace = {}
    exec(open(sys.argv[3]).read(), namespace)  # the README's import, as written
    build_datasets = namespace["build_datasets"]

    @dataclasses.dataclass
    class DataTrainingArguments:  # the fields of theirs (train/spatialvla_finetune.py)
        data_root_dir: Optional[str] = None
        data_mix: Optional[str] = None
        max_seq_length: Optional[int] = 2048
        shuffle_buffer_size: Optional[int] = None
        tsfm_thread_muti: Optional[int] = 1
        read_thread_muti: Optional[int] = 1
        obs_backward_steps: Optional[int] = 0
        obs_backward_delta: Optional[int] = 1
        action_forward_steps: Optional[int] = 0
        fix_raw_length: Optional[int] = None
        use_raw_dataloader: Optional[bool] = True

    args = DataTrainingArguments(data_root_dir=sys.argv[1], data_mix="test_mix", shuffle_buffer_size=16,
                                 action_forward_steps=3)
    train, _ = build_datasets(args, sys.argv[2])
    train.vla_processor = StandInProcessor(image_seq_length=4, image_size=224)
    loader = torch.utils.data.DataLoader(train, batch_size=4, num_workers=2, collate_fn=list)
    items = [item for batch in loader for item in batch]
    from shards.openvla import RLDSDataset  # OpenVLA's drop-in, augmentation on, in the same environment
    openvla = RLDSDataset(sys.argv[1], "test_mix", lambda b: b, (24, 32), shuffle_buffer_size=16, image_aug=True)
    frames = [b["observation"]["image_primary"] for _, b in zip(range(20), openvla)]
    print(json.dumps({
        "openvla": {"len": len(openvla), "frames": sorted({(*f.shape, str(f.dtype)) for f in frames})},
        "versions": {m.__name__: m.__version__ for m in (np, torch, transformers, datasets)},
        "torch_file": torch.__file__,
        "len": len(train),
        "items": len(items),
        "actions": sorted({tuple(i["actions"].shape) for i in items}),
        "pixels": sorted({tuple(i["pixel_values"].shape) for i in items}),
        "rows": sorted({(round(float(i["actions"][0][0]) * 16), round(float(i["actions"][0][1]) * 16),
                         float(i["actions"][0][4])) for i in items}),
        "stats": sorted(train.ds_stats_pc),
        "heavy": sorted(m for m in ("tensorflow", "apache_beam", "tensorflow_datasets") if m in sys.modules),
    }))
    """
)


@pytest.fixture(scope="module")
def spatialvla_env(tmp_path_factory):
    """SpatialVLA's environment, and the README's install line run in it as written, from the project."""
    from tests.shards.readme import readme_blocks

    venv = cached_venv("spatialvla", sys.executable, SPATIALVLA_PINS, link_our_torch=True)
    project = project_copy(tmp_path_factory.mktemp("project"))
    before = frozen(venv)
    install = [code for lang, code in readme_blocks("Train with SpatialVLA") if lang == "bash"][0]
    assert install.strip() == "pip install '.[trainer]'"
    env_path = f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"  # as with the environment activated
    run(["bash", "-c", f"export PATH='{env_path}' VIRTUAL_ENV='{venv}'; {install}"], cwd=project)
    after = frozen(venv)
    return venv, before, after, {n: v for n, v in after.items() if before.get(n) != v}


def test_trainer_extra_installs_into_spatialvla_env_without_touching_it(spatialvla_env):
    venv, before, after, installed = spatialvla_env
    assert not FORBIDDEN & set(after), sorted(FORBIDDEN & set(after))
    assert "torch" not in installed and "torchvision" not in installed  # ours, linked, accepted as it is
    assert after["tensorflow"] == "2.15.0" and after["tensorflow-datasets"] == "4.9.3"
    for pin in SPATIALVLA_PINS:  # every pin of theirs still there, at its version
        name, version = pin.split("==")
        assert after[canonical(name)] == version == before[canonical(name)], pin
    assert "spatial-action-pipeline" in after
    changed = {n for n in before if after.get(n) != before[n]} - {"spatial-action-pipeline"}  # a rerun reinstalls it
    assert not changed, f"pip install '.[trainer]' changed {sorted(changed)}"
    assert set(installed) - set(before) <= {"spatial-action-pipeline", "torchdata", "xxhash"}  # nothing else new


def test_build_datasets_runs_in_spatialvla_env(spatialvla_env, tmp_path):
    from tests.shards.readme import readme_blocks
    from tests.shards.test_spatialvla import DATASETS, build, drawable, their_length

    venv, *_ = spatialvla_env
    export = build(tmp_path / "export")
    script, snippet = tmp_path / "run.py", tmp_path / "snippet.py"
    script.write_text(SPATIALVLA_RUN)
    snippet.write_text([code for lang, code in readme_blocks("Train with SpatialVLA") if lang == "python"][0])
    done = run([venv / "bin" / "python", script, export, tmp_path / "run", snippet], cwd=tmp_path)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["versions"]["numpy"] == "1.26.4" and result["versions"]["transformers"] == "4.47.0"
    assert result["versions"]["datasets"] == "3.0.2"
    assert result["torch_file"].startswith(str(venv / "our-torch"))  # the reused torch, said in the docstring
    weights = {n: v[1] for n, v in DATASETS.items()}
    transitions = {n: sum(v[3]) for n, v in DATASETS.items()}
    assert result["len"] == their_length(weights, transitions, 1) == result["items"]
    assert result["actions"] == [[4, 7]] and result["pixels"] == [[1, 3, 224, 224]]
    by_tag = {v[2]: n for n, v in DATASETS.items()}
    assert {(by_tag[tag], e, s) for e, s, tag in result["rows"]} <= drawable()
    assert result["stats"] == sorted(f"{n}/{v[0]}" for n, v in DATASETS.items())
    assert result["heavy"] == []  # no TensorFlow and no Beam in the training process
    from tests.shards.test_openvla import their_length as openvla_length

    assert result["openvla"] == {"len": openvla_length(weights, transitions), "frames": [[1, 24, 32, 3, "uint8"]]}


if __name__ == "__main__":  # build the cached environments ahead of a test run: python -m tests.shards.test_trainer_env
    print(cached_venv("py310", python310(), DATASETS_3_0_2_ARROW, link_our_torch=False))
    print(cached_venv("spatialvla", sys.executable, SPATIALVLA_PINS, link_our_torch=True))
