"""The worker install: the main job without depth runs with no torch, no TensorFlow, no TFDS, no
transformers, no matplotlib (pyproject.toml's plain install and its [worker] extra; README, "Installs"); the extras the
code checks for are the ones pyproject.toml declares; make run and make test install what they say."""

import hashlib
import importlib
import importlib.metadata
import json
import os
import pkgutil
import re
import subprocess
import sys
import textwrap

import pytest
import tomllib

from manifests.extras import EXTRAS
from pipeline.run import main
from tests.conftest import ROOT

# Packages only the extras bring: depth (torch, transformers), the trainer (torchvision), the sample
# corpus writer (tensorflow, tensorflow_datasets), plots (matplotlib). triton and jax: what torch or
# TFDS could pull in.
NOT_IN_WORKER = (
    "torch", "torchvision", "transformers", "tensorflow", "tensorflow_datasets", "matplotlib", "triton", "jax",
)  # fmt: skip
# Every module a machine of the main job runs (driver and workers): the rooms below shards/, the
# output contract's modules of shards/, the depth codec the export names, the Beam jobs and the CLI.
WORKER_PACKAGES = ("storage", "manifests", "transforms", "sources", "grids", "beam_jobs", "pipeline")
WORKER_MODULES_OF_OTHER_ROOMS = ("shards.schema", "shards.manifest", "shards.rewrite", "shards.text", "depth.codec")


def worker_modules() -> list[str]:
    found = []
    for pkg in WORKER_PACKAGES:
        found += [m.name for m in pkgutil.walk_packages(importlib.import_module(pkg).__path__, pkg + ".")]
    return sorted(found) + list(WORKER_MODULES_OF_OTHER_ROOMS)


def python(code: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip


def test_importing_every_worker_module_imports_no_extra():
    modules = worker_modules()
    assert {"sources.rlds", "beam_jobs.shard_writing", "grids.tokenizer", "pipeline.run"} <= set(modules)
    p = python(
        """
        import importlib, json, sys
        for m in sys.argv[2:]:
            importlib.import_module(m)
        print(json.dumps(sorted({k.split(".")[0] for k in sys.modules} & set(sys.argv[1].split(",")))))
        """,
        ",".join(NOT_IN_WORKER),
        *modules,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads(p.stdout.strip().splitlines()[-1]) == []


# Runs a module as `python -m` would, with the extras' packages made unimportable: a finder ahead of
# all others refuses them, so any import of one raises ModuleNotFoundError, as on the worker install
# (simulated in the full test venv; the real worker venv is measured by the README's command).
AS_WORKER = """
import runpy, sys

BLOCKED = set(sys.argv[1].split(","))


class NotInstalled:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named '{name}'", name=name)
        return None


sys.meta_path.insert(0, NotInstalled)
module, sys.argv = sys.argv[2], [sys.argv[2], *sys.argv[3:]]
try:
    runpy.run_module(module, run_name="__main__", alter_sys=True)
except SystemExit as e:
    code = e.code
else:
    code = 0
print("LOADED", ",".join(sorted(n for n in list(sys.modules) if n.split(".")[0] in BLOCKED)))
sys.exit(code)
"""


def as_worker(module: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return python(AS_WORKER, ",".join(NOT_IN_WORKER), module, *args, env=env)


def shard_hashes(out) -> dict:
    manifest = json.loads((out / "manifest.json").read_text())
    return {
        s["path"]: hashlib.sha256((out / s["path"]).read_bytes()).hexdigest()
        for d in manifest["datasets"].values()
        for s in d["shards"]
    }


@pytest.mark.slow
def test_the_main_job_runs_on_the_worker_install_with_the_same_bytes(bridge_root, tmp_path):
    # depth asked for with a checkpoint directory: skipped with a note that says what to install
    model = tmp_path / "zoedepth"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"")
    args = ["--mixture", "bridge", "--data-dir", str(bridge_root), "--image-size", "64"]
    worker = as_worker("pipeline.run", *args, "--out", str(tmp_path / "worker"), "--depth-model", str(model))
    assert worker.returncode == 0, worker.stderr[-3000:]
    assert worker.stdout.strip().splitlines()[-1] == "LOADED"  # the blocker held: none of them loaded
    report = json.loads((tmp_path / "worker" / "report.json").read_text())
    assert any("torch and transformers not installed" in n and ".[worker,depth]" in n for n in report["notes"]), report
    assert "torch and transformers not installed" in worker.stdout  # the summary's note

    # the same shards, grid and statistics as the full install's run without depth
    assert main([*args, "--out", str(tmp_path / "full"), "--no-depth"]) == 0
    assert shard_hashes(tmp_path / "worker") == shard_hashes(tmp_path / "full") != {}
    for f in ("dataset_statistics.json", "grids/bridge.json"):
        assert (tmp_path / "worker" / f).read_bytes() == (tmp_path / "full" / f).read_bytes(), f

    # grids.inspect: the summary, and one line instead of plots
    inspect = as_worker("grids.inspect", str(tmp_path / "worker" / "grids" / "bridge.json"))
    assert inspect.returncode == 0, inspect.stderr[-3000:]
    assert "plots not written: matplotlib is not installed (pip install '.[worker,plots]')" in inspect.stdout

    # what needs an extra says which, in one line, exit 2
    tok = tmp_path / "tok"  # a tokenizer's directory: the flag's path check passes, the extra is missing
    tok.mkdir()
    text = as_worker("pipeline.run", *args, "--out", str(tmp_path / "text"), "--no-depth", "--text-tokenizer", str(tok))
    assert text.returncode == 2
    assert text.stderr.strip().splitlines()[-1] == (
        f"error: --text-tokenizer '{tok}': transformers is not installed (pip install '.[worker,text]')"
    )


def test_the_sample_corpus_without_tensorflow_is_one_line(tmp_path):
    env = {"SPATIAL_PIPELINE_CACHE": str(tmp_path / "cache")}
    p = as_worker("pipeline.run", "--mixture", "bridge", "--out", str(tmp_path / "out"), env=env)
    assert p.returncode == 2, p.stderr[-3000:]
    assert p.stderr.strip().splitlines()[-1] == (
        "error: the built-in sample corpus is written by TFDS with TensorFlow: tensorflow and tensorflow_datasets "
        "not installed (the worker install has no TensorFlow or TFDS); install the sample extra, "
        "pip install '.[worker,sample]', or give --data-dir"
    )
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def test_the_extras_the_code_checks_are_the_ones_pyproject_declares():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    worker = requirement_names(project["dependencies"] + extras["worker"])  # the plain install + [worker]
    distributions = importlib.metadata.packages_distributions()  # import name -> installed distributions
    for extra, (_, import_names) in EXTRAS.items():
        declared = requirement_names(extras[extra])
        for name in import_names:
            dists = {d.lower().replace("_", "-") for d in distributions[name]}
            assert dists & declared, f"[{extra}] does not declare {name} ({dists})"
    heavy = {
        "torch",
        "torchvision",
        "transformers",
        "tensorflow",
        "tensorflow-cpu",
        "tensorflow-datasets",
        "matplotlib",
    }
    assert not worker & heavy, worker & heavy  # the worker install stays lean
    assert {"torch", "transformers"} <= requirement_names(extras["depth"])
    # `make test` installs every extra; `make run` every extra but the test tools
    every = set(extras) - {"all", "test", "gcs"}
    assert {f"spatial-action-pipeline[{','.join(sorted(every))}]"} & set(extras["all"]), extras["all"]
    assert "spatial-action-pipeline[all]" in extras["test"]


def test_make_run_installs_every_extra_but_the_test_tools(tmp_path):
    def recipe(target: str) -> str:  # what make would run on a fresh machine (-B: nothing is up to date)
        p = subprocess.run(
            ["make", "-n", "-B", target, f"VENV={tmp_path / 'venv'}"], cwd=ROOT, capture_output=True, text=True
        )
        assert p.returncode == 0, p.stderr
        return p.stdout

    run, test = recipe("run"), recipe("test")
    assert "pip install -e '.[all]'" in run and "[test]" not in run
    assert "-m pipeline.run --mixture oxe_magic_soup" in run
    assert "pip install -e '.[test]'" in test and "-m pytest" in test and "ruff check" in test
    assert not re.search(r"pip install[^\n]*(-q\b|--quiet)", run + test)  # installs show their progress


def test_every_install_command_of_the_readme_names_extras_that_exist():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    commands = re.findall(r"pip install (?:-e )?'?\.(?:\[([\w,]+)\])?'?", (ROOT / "README.md").read_text())
    named = {name for group in commands for name in group.split(",") if name}
    assert {"worker", "depth", "all", "test"} <= named, named
    assert named <= set(extras), named - set(extras)


def test_the_converter_without_its_extra_is_one_line(tmp_path):
    (tmp_path / "episodes").mkdir()
    p = as_worker("sources.convert", str(tmp_path / "episodes"), "--name", "my_robot", "--out", str(tmp_path / "out"),
                  "--control-hz", "10")  # fmt: skip
    assert p.returncode == 2, p.stderr[-3000:]
    assert p.stderr.strip().splitlines()[-1] == (
        "error: tensorflow and tensorflow_datasets not installed (the worker install writes no RLDS); "
        "pip install '.[worker,convert]'"
    )
    assert not (tmp_path / "out").exists()
