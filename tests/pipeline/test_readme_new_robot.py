"""The README's "A new robot" section, run as written in a fresh directory: its Python blocks as scripts,
its command blocks line by line, and its YAML block compared with the mixture file the converter writes."""

import os
import re
import shlex
import subprocess
import sys

import pytest

from manifests.registry import load_mixture_file, load_registry
from tests.conftest import ROOT

README = ROOT / "README.md"


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of each fenced block, in order."""
    return re.findall(r"^```(\w*)\n(.*?)^```$", text, flags=re.S | re.M)


def commands(body: str) -> list[list[str]]:
    out = []
    for line in body.splitlines():
        line = line.split("  #")[0].strip()
        if line:
            argv = shlex.split(line)
            assert argv[:2] == ["python", "-m"], line  # every command of the section is one of ours
            out.append(argv[1:])
    return out


@pytest.mark.slow
def test_the_new_robot_section_runs_as_written(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    mixture_file = None
    found = []
    for lang, body in blocks(section("A new robot")):
        found.append(lang or "sh")
        if lang == "python":
            script = tmp_path / f"block{len(found)}.py"
            script.write_text(body)
            r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=900)  # fmt: skip
            assert r.returncode == 0, (body, r.stderr[-3000:])
        elif lang == "yaml" and re.match(r"# (\S+\.yaml)\n", body):  # a file the user writes
            (tmp_path / re.match(r"# (\S+\.yaml)\n", body).group(1)).write_text(body)
        elif lang == "yaml":  # the file the converter wrote, shown as it is
            assert mixture_file is not None and (tmp_path / mixture_file).read_text() == body, "the YAML block differs"
            name, weights, extra, roots = load_mixture_file(tmp_path / mixture_file, load_registry())
            assert extra["my_robot"].image_size == (240, 320) and extra["my_robot"].intrinsics.width == 320
            assert roots == {"my_robot": str(tmp_path / "my_data")}
        else:
            for argv in commands(body):
                if "--mixture" in argv and argv[1] == "sources.convert":
                    mixture_file = argv[argv.index("--mixture") + 1]
                r = subprocess.run([sys.executable, *argv], cwd=tmp_path, env=env, capture_output=True, text=True,
                                   timeout=900)  # fmt: skip
                assert r.returncode == 0, (argv, r.stderr[-3000:])
    assert found == ["python", "sh", "yaml", "sh", "sh", "sh", "yaml", "sh", "python"], found
    # what the section promises: the export exists, re-tokenized with the new grid, and reads
    from grids.grid import ActionGrid
    from shards.manifest import verify_manifest
    from storage.jsonio import sha256_of

    manifest = verify_manifest(str(tmp_path / "output" / "my_robot"))
    grid = ActionGrid.load(str(tmp_path / "my_robot_grid.json"))
    assert manifest["grid_sha256"] == sha256_of(grid.to_json())  # the export now tokenizes with the new grid
    assert grid.counts == ActionGrid.load(str(tmp_path / "output" / "bridge" / "grids" / "bridge.json")).counts
    assert manifest["datasets"]["my_robot"]["num_transitions"] == 8 * 30
    mix = verify_manifest(str(tmp_path / "output" / "my_mix"))  # the mixture: the robot's grid, two roots
    assert set(mix["datasets"]) == {"my_robot", "bridge_orig"} and mix["grid_sha256"] == sha256_of(grid.to_json())
    assert mix["inputs"]["bridge_orig"]["synthetic"] and not mix["inputs"]["my_robot"]["synthetic"]
    assert (tmp_path / "my_robot_grid_embedding_map.npz").exists()
