"""The registry against MIXTURES.md, and one clear error for each kind of bad input."""

import json
import re
import subprocess
import sys

import pytest

from manifests.registry import RegistryError, load_registry, parse_inline, resolve_mixture
from manifests.vocabulary import GRIPPER_CONVENTIONS
from tests.conftest import MIXTURES_MD, ROOT

COLUMNS = ["oxe_magic_soup", "oxe_magic_soup_plus", "oxe_spatial_vla_plus", "oxe_spatial_vla_plus_stage2"]


def mixtures_from_markdown() -> tuple[dict, dict]:
    """Parse the mixture table and the smaller-mixture prose of MIXTURES.md independently."""
    text = MIXTURES_MD.read_text()
    versions, mixtures = {}, {c: {} for c in COLUMNS}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 6 or not re.fullmatch(r"[a-z0-9_]+", cells[0]) or cells[0] == "dataset":
            continue
        versions[cells[0]] = cells[1]
        for col, cell in zip(COLUMNS, cells[2:]):
            if cell != "-":
                mixtures[col][cells[0]] = float(cell)
    small = re.search(r"Smaller named mixtures:(.*?)\n\n", text, re.S).group(1)
    for name, body in re.findall(r"`(\w+)` =\s*(.*?)(?:;|\.\s*$|\.$)", small.replace("\n", " ")):
        mixtures[name] = {d: float(w) for d, w in re.findall(r"(\w+) ([\d.]+)", body.replace("+", " "))}
    return versions, mixtures


def test_every_named_mixture_has_the_published_weights(registry):
    versions, expected = mixtures_from_markdown()
    assert len(versions) == 28
    assert set(expected) == set(registry.mixtures) == set(COLUMNS) | {"bridge", "fractal", "bridge_rt_1", "rtx"}
    for name, weights in expected.items():
        assert registry.mixtures[name] == weights, name
    for ds, version in versions.items():
        assert registry.datasets[ds].version == version, ds
    assert set(registry.datasets) == set(versions)


def test_grid_fit_exclusion_list_is_spatialvlas(registry):
    excluded = {n for n, d in registry.datasets.items() if d.grid_fit_excluded}
    assert excluded == {"language_table", "berkeley_fanuc_manipulation", "cmu_stretch", "jaco_play"}


def test_every_dataset_entry_is_complete(registry):
    for cfg in registry.datasets.values():
        assert cfg.primary_image and cfg.image_size[0] > 0 and cfg.control_hz > 0
        assert cfg.gripper_convention in GRIPPER_CONVENTIONS
        assert cfg.intrinsics.fx > 0 and cfg.intrinsics.width > 0
    default = registry.datasets["bridge_orig"].intrinsics
    assert (default.fx, default.fy, default.cx, default.cy) == (623.588, 623.588, 319.501, 239.545)


def test_inline_mixture(registry):
    m = resolve_mixture(datasets="bridge_orig=1.0, fractal20220817_data=0.5", registry=registry)
    assert m.weights == {"bridge_orig": 1.0, "fractal20220817_data": 0.5}
    assert m.datasets["bridge_orig"].name == "bridge_orig"


@pytest.mark.parametrize(
    "spec, message",
    [
        ("bridge_orgi=1", "unknown dataset 'bridge_orgi' (did you mean 'bridge_orig'"),
        ("bridge_orig=0", "weight must be a positive number, got '0'"),
        ("bridge_orig=-1", "weight must be a positive number"),
        ("bridge_orig=abc", "weight must be a positive number, got 'abc'"),
        ("bridge_orig=nan", "weight must be a positive number"),
        ("bridge_orig", "expected NAME=WEIGHT"),
        ("bridge_orig=1,bridge_orig=2", "duplicate dataset 'bridge_orig'"),
    ],
)
def test_inline_mixture_errors(registry, spec, message):
    with pytest.raises(RegistryError, match=re.escape(message)) as e:
        parse_inline(spec, registry)
    assert "\n" not in str(e.value)


def test_unknown_mixture_suggests_closest(registry):
    with pytest.raises(RegistryError, match=r"unknown mixture 'oxe_magic_sop' \(did you mean 'oxe_magic_soup'"):
        resolve_mixture("oxe_magic_sop", registry=registry)


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_mixture_file(tmp_path, registry):
    p = write(tmp_path, "mine.yaml", "name: mine\ndatasets:\n  bridge_orig: 2\n  kuka: 0.5\n")
    m = resolve_mixture(str(p), registry=registry)
    assert (m.name, m.weights, m.source) == ("mine", {"bridge_orig": 2.0, "kuka": 0.5}, str(p))


def test_mixture_file_with_a_new_robot(tmp_path, registry):
    p = write(
        tmp_path,
        "robot.yaml",
        """
datasets: {my_robot: 1.0, bridge_orig: 1.0}
dataset_configs:
  my_robot:
    version: 1.0.0
    control_hz: 10
    images: {primary: observation/image}
    image_size: [224, 224]
    instruction: {key: language_instruction}
    proprio: []
    action:
      translation: {key: action, slice: [0, 3]}
      rotation: {key: action, slice: [3, 6]}
      gripper: {key: action, slice: [6, 7], convention: absolute_open}
""",
    )
    m = resolve_mixture(str(p), registry=registry)
    assert m.datasets["my_robot"].intrinsics.source == "default"
    assert m.datasets["my_robot"].gripper_convention == "absolute_open"


@pytest.mark.parametrize(
    "text, message",
    [
        ("datasets:\n  bridge_orig: 1\n  bridge_orig: 2\n", "line 3: duplicate key 'bridge_orig'"),
        ("datasets:\n  bridge_orig: -2\n", "dataset 'bridge_orig': weight must be a positive number, got -2"),
        ("datasets:\n  bridge_orig: true\n", "weight must be a positive number, got True"),
        ("datasets:\n  brige_orig: 1\n", "unknown dataset 'brige_orig' (did you mean 'bridge_orig'"),
        ("name: x\n", "missing field 'datasets'"),
        ("datasets: {bridge_orig: 1}\nweights: {}\n", "unknown field(s) ['weights']"),
        ("datasets: [1, 2\n", "not valid YAML"),
        ("datasets: {r: 1}\ndataset_configs:\n  r: {version: 1.0.0}\n", "dataset 'r': missing field 'control_hz'"),
    ],
)
def test_mixture_file_errors(tmp_path, registry, text, message):
    p = write(tmp_path, "bad.yaml", text)
    with pytest.raises(RegistryError, match=re.escape(message)) as e:
        resolve_mixture(str(p), registry=registry)
    assert str(e.value).startswith(str(p)) and "\n" not in str(e.value)


def test_bad_registry_entry_names_file_dataset_and_field(tmp_path):
    good = (ROOT / "manifests" / "datasets.yaml").read_text()
    bad = write(tmp_path, "datasets.yaml", good.replace("convention: relative}", "convention: sideways}", 1))
    with pytest.raises(
        RegistryError, match=r"datasets.yaml: dataset 'fractal20220817_data': action.gripper.convention must be one of"
    ):
        load_registry(bad)
    bad = write(tmp_path, "datasets.yaml", good.replace("    control_hz: 3\n", "", 1))
    with pytest.raises(RegistryError, match=r"dataset 'fractal20220817_data': missing field 'control_hz'"):
        load_registry(bad)


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "pipeline.run", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_dry_run_resolves_every_named_mixture(registry, tmp_path):
    _, expected = mixtures_from_markdown()
    for name, weights in expected.items():
        r = run_cli("--mixture", name, "--dry-run", "--data-dir", str(tmp_path))
        assert r.returncode == 2, r.stderr  # the plan is printed, and a missing dataset fails the dry run
        (line,) = [x for x in r.stderr.splitlines() if x.startswith("error:")]
        assert f"dataset '{next(iter(weights))}'" in line and "not found" in line, line
        plan = json.loads(r.stdout)
        assert {d["name"]: d["weight"] for d in plan["datasets"]} == weights
        assert all(not d["found"] and d["root"] == str(tmp_path) for d in plan["datasets"])
        assert plan["stages"] == ["stats", "grids", "depth", "export"]


def test_dry_run_on_real_bridge_counts_episodes(bridge_root):
    r = run_cli(
        "--mixture", "bridge", "--dry-run", "--data-dir", str(bridge_root), "--split", "train[:40%]", "--no-depth"
    )
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    (d,) = plan["datasets"]
    assert d["found"] and d["episodes"] == 10 and d["splits"] == {"train": 25, "val": 25}
    assert d["path"].endswith("bridge_dataset/1.0.0")
    assert plan["stages"] == ["stats", "grids", "export"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--mixture", "oxe_magic_sop"], "error: --mixture: unknown mixture 'oxe_magic_sop'"),
        (["--datasets", "bridge_orig=0"], "weight must be a positive number"),
        (["--mixture", "bridge", "--stages", "stats,tokens"], "--stages: unknown stage 'tokens'"),
        (["--mixture", "nope.yaml"], "mixture file 'nope.yaml' does not exist"),
    ],
)
def test_cli_errors_are_one_line_exit_2(args, message):
    r = run_cli(*args, "--dry-run")
    assert r.returncode == 2
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_help_documents_every_flag():
    r = run_cli("--help")
    assert r.returncode == 0
    for flag in [
        "--mixture",
        "--datasets",
        "--data-dir",
        "--out",
        "--split",
        "--max-episodes",
        "--stages",
        "--image-size",
        "--depth-model",
        "--no-depth",
        "--seed",
        "--strict",
        "--dry-run",
    ]:
        assert flag in r.stdout


def test_each_vocabulary_is_implemented_by_the_code_that_reads_it():
    from manifests import vocabulary
    from transforms.gripper import CONVENTIONS
    from transforms.normalize import MODES
    from transforms.sampling import FILTERS

    assert set(CONVENTIONS) == set(vocabulary.GRIPPER_CONVENTIONS)
    assert set(MODES) == set(vocabulary.NORMALIZATIONS)
    assert set(FILTERS) == set(vocabulary.SAMPLE_FILTERS)
    for encoding in vocabulary.ACTION_ENCODINGS.values():
        assert len(encoding["absolute_mask"]) == 7


def test_a_camera_choice_and_a_sample_filter_are_checked(tmp_path):
    from manifests.registry import RegistryError, parse_datasets

    intrinsics = {"fx": 1.0, "fy": 1.0, "cx": 0.0, "cy": 0.0, "width": 2, "height": 2}
    entry = {
        "version": "1",
        "control_hz": 10,
        "images": {"primary": ["observation/a", "observation/b"]},
        "image_size": [8, 8],
        "instruction": {"key": "language_instruction"},
        "proprio": [],
        "action": {
            "translation": {"key": "action", "slice": [0, 3]},
            "rotation": {"format": "none"},
            "gripper": {"convention": "always_open"},
        },
        "sample_filter": "zero_movement",
    }
    cfg = parse_datasets({"datasets": {"r": entry}, "default_intrinsics": intrinsics}, "test")["r"]
    assert cfg.primary_choices == ("observation/a", "observation/b") and cfg.sample_filter == "zero_movement"
    with pytest.raises(RegistryError, match="sample_filter"):
        parse_datasets({"datasets": {"r": {**entry, "sample_filter": "still"}}, "default_intrinsics": intrinsics}, "t")
    with pytest.raises(RegistryError, match="images.primary must be a step key or a list of them"):
        bad = {**entry, "images": {"primary": ["observation/a", 3]}}
        parse_datasets({"datasets": {"r": bad}, "default_intrinsics": intrinsics}, "t")


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            ("    control_hz: 3\n", "    control_hz: fast\n"),
            "dataset 'fractal20220817_data': control_hz must be a positive number, got 'fast'",
        ),
        (
            ("    control_hz: 3\n", "    control_hz: 3\n    colour: red\n"),
            "dataset 'fractal20220817_data': unknown field(s) ['colour']",
        ),
        (
            (
                "      translation: {key: action/world_vector}\n",
                "      translation: {key: action/world_vector, scale: 2}\n",
            ),
            "action.translation: unknown field(s) ['scale']",
        ),
    ],
)
def test_bad_registry_values_are_one_line_errors(tmp_path, edit, message):
    good = (ROOT / "manifests" / "datasets.yaml").read_text()
    bad = write(tmp_path, "datasets.yaml", good.replace(*edit, 1))
    with pytest.raises(RegistryError, match=re.escape(message)) as e:
        load_registry(bad)
    assert "\n" not in str(e.value)


def test_dataset_intrinsics_are_checked(tmp_path, registry):
    entry = """
datasets: {cam: 1.0}
dataset_configs:
  cam:
    version: 1.0.0
    control_hz: 10
    images: {primary: observation/image}
    image_size: [224, 224]
    instruction: {key: language_instruction}
    proprio: []
    action:
      translation: {key: action, slice: [0, 3]}
      rotation: {key: action, slice: [3, 6]}
      gripper: {key: action, slice: [6, 7], convention: absolute_open}
    intrinsics: %s
"""
    ok = write(tmp_path, "ok.yaml", entry % "{fx: 500, fy: 500, cx: 112, cy: 112, width: 224, height: 224}")
    intr = resolve_mixture(str(ok), registry=registry).datasets["cam"].intrinsics
    assert (intr.fx, intr.width, intr.source) == (500, 224, "dataset")
    bad = write(tmp_path, "bad.yaml", entry % "{fx: 500, fy: 500, cx: 112, cy: 112, width: 224, height: 224, k1: 0.1}")
    with pytest.raises(RegistryError, match=re.escape("intrinsics: unknown field(s) ['k1']")):
        resolve_mixture(str(bad), registry=registry)
