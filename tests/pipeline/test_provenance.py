"""An export knows what made it, and a run never silently replaces it (issue 21): the manifest's
inputs, roots per dataset, refusals of other data, another --datasets, a given grid (kept or
refused), --stages export with other settings, --overwrite, config keys checked against
features.json, and the hostile classes: same-named RLDS files in two datasets, paths that look like
glob patterns, manifest paths outside OUT."""

import hashlib
import io
import json
import shutil

import numpy as np
import pytest
import yaml

from grids.grid import ActionGrid
from grids.tokenizer import ActionTokenizer
from manifests.registry import DATASETS_FILE, load_registry
from pipeline.run import main
from shards.manifest import verify_manifest
from sources.rlds import RLDSDataset, find_dataset_dir, fingerprint
from storage.jsonio import read_json
from tests.pipeline.test_end_to_end import file_hashes, read_rows

pytestmark = pytest.mark.slow  # end-to-end runs of the job

FAST = ["--no-depth", "--image-size", "32"]


def errors(capfd) -> list[str]:
    return [x for x in capfd.readouterr().err.splitlines() if x.startswith("error:")]


def one_error(capfd) -> str:
    lines = errors(capfd)
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture()
def builtin_sample(monkeypatch, sample_corpus):
    """Runs without --data-dir (and `data_dir: builtin:sample`) read the session's small sample corpus
    instead of generating the default one (75 MB) under the user's cache."""
    import sources.sample

    monkeypatch.setattr(sources.sample, "ensure_corpus", lambda *a, **k: sample_corpus)
    monkeypatch.setattr(sources.sample, "default_corpus_dir", lambda: sample_corpus)
    return sample_corpus


def registry_entry(name: str) -> dict:
    return yaml.safe_load(DATASETS_FILE.read_text())["datasets"][name]


# ---------------------------------------------------------------- provenance and other data


def test_the_manifest_records_its_inputs_and_another_root_is_refused(bridge_root, builtin_sample, tmp_path, capfd):
    out = tmp_path / "bridge"
    assert main(["--mixture", "bridge", "--data-dir", str(bridge_root), "--out", str(out), *FAST]) == 0
    m = read_json(str(out / "manifest.json"))
    path = str(bridge_root / "bridge_dataset" / "1.0.0")
    expected = fingerprint(RLDSDataset(path, "bridge_orig"), "train")  # computed here, from the files
    assert m["inputs"] == {
        "bridge_orig": {
            "version": "1.0.0",
            "root": str(bridge_root),
            "path": path,
            "fingerprint": expected,
            "synthetic": False,
        }
    }
    assert m["synthetic"] is False and m["grid_source"] == {"kind": "fitted", "fit": "gaussian"}
    before = file_hashes(out)
    capfd.readouterr()

    # the same mixture, --data-dir forgotten: the sample corpus would replace the real export
    assert main(["--mixture", "bridge", "--out", str(out), *FAST]) == 2
    line = one_error(capfd)
    assert f"read from {path} (real data)" in line
    assert f"{builtin_sample}/bridge_dataset/1.0.0 (the built-in sample corpus: synthetic)" in line
    assert "--overwrite" in line
    assert file_hashes(out) == before

    assert main(["--mixture", "bridge", "--out", str(out), *FAST, "--overwrite"]) == 0
    assert "built-in sample corpus: synthetic data, not for training" in capfd.readouterr().out
    m = read_json(str(out / "manifest.json"))
    assert m["synthetic"] is True and m["inputs"]["bridge_orig"]["synthetic"] is True
    assert m["inputs"]["bridge_orig"]["root"] == str(builtin_sample)
    assert (
        sum(s["num_rows"] for s in m["datasets"]["bridge_orig"]["shards"])
        == read_json(str(out / "dataset_statistics.json"))["bridge_orig"]["num_transitions"]
    )
    assert sorted(p.name for p in (out / "shards" / "bridge_orig").iterdir()) == ["train-00000-of-00001.arrow"]


def test_each_datasets_run_gets_its_own_output(sample_corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for spec in ("toto=1", "kuka=1", "toto=1,kuka=0.5"):
        assert main(["--datasets", spec, "--data-dir", str(sample_corpus), *FAST]) == 0
    outs = sorted(p.name for p in (tmp_path / "output").iterdir())
    assert outs == ["custom-kuka-1", "custom-toto-1", "custom-toto-1+kuka-0.5"]
    for name in outs:
        m = verify_manifest(str(tmp_path / "output" / name))
        names = [d.split("-")[0] for d in name[len("custom-") :].split("+")]
        assert sorted(m["datasets"]) == sorted(names)
        assert sorted(p.name for p in (tmp_path / "output" / name / "shards").iterdir()) == sorted(names)


def test_a_mixture_file_gives_datasets_their_own_roots(bridge_root, builtin_sample, sample_corpus, tmp_path, capfd):
    mixdir = tmp_path / "mixes"
    mixdir.mkdir()
    (tmp_path / "robot_data").symlink_to(sample_corpus)  # a user's own root, named relative to the file
    mix = mixdir / "mine.yaml"
    mix.write_text(
        "name: mine\n"
        "datasets:\n"
        "  bridge_orig: 1.0\n"  # from --data-dir
        "  kuka: {weight: 2.0, data_dir: ../robot_data}\n"
        "  toto: {weight: 0.5, data_dir: 'builtin:sample'}\n"
    )
    args = ["--mixture", str(mix), "--data-dir", str(bridge_root), "--out", str(tmp_path / "out"), *FAST]
    assert main([*args, "--dry-run"]) == 0
    plan = json.loads(capfd.readouterr().out)
    roots = {d["name"]: (d["root"], d["root_from"], d["synthetic"]) for d in plan["datasets"]}
    assert roots == {
        "bridge_orig": (str(bridge_root), "--data-dir", False),
        "kuka": (str(tmp_path / "robot_data"), "the mixture file's data_dir", True),  # the sample, by content
        "toto": (str(builtin_sample), "the mixture file's data_dir", True),
    }
    assert plan["stage_plan"] == {"stats": "runs", "grids": "runs", "depth": "skipped: --no-depth", "export": "runs"}
    assert main(args) == 0
    m = verify_manifest(str(tmp_path / "out"))
    assert {n: (i["root"], i["synthetic"]) for n, i in m["inputs"].items()} == {
        n: (r, s) for n, (r, _, s) in roots.items()
    }
    assert m["synthetic"] is True
    assert {n: d["num_trajectories"] for n, d in m["datasets"].items()} == {"bridge_orig": 25, "kuka": 2, "toto": 2}

    mix.write_text("datasets:\n  kuka: {weight: 1, data_dir: ../absent}\n")
    assert main([*args, "--dry-run"]) == 2
    assert f"data dir '{tmp_path / 'absent'}' (the mixture file's data_dir) does not exist" in one_error(capfd)
    mix.write_text("datasets:\n  kuka: {weight: 1, root: /x}\n")
    assert main([*args, "--dry-run"]) == 2
    assert "dataset 'kuka': unknown field(s) ['root'] (known: weight, data_dir)" in one_error(capfd)


# ---------------------------------------------------------------- config keys against features.json


def test_every_configured_key_is_checked_against_features_json(sample_corpus, bridge_root, tmp_path, capfd):
    from pipeline.plan import key_problems

    registry = load_registry()
    for name, cfg in registry.datasets.items():  # every registry config fits its own schema
        path = find_dataset_dir(str(sample_corpus), name, cfg.version, cfg.rlds_dirs)
        assert key_problems(cfg, RLDSDataset(path, name).fields) == [], name
    bridge = registry.datasets["bridge_orig"]
    assert key_problems(bridge, RLDSDataset(str(bridge_root / "bridge_dataset" / "1.0.0")).fields) == []

    entry = registry_entry("toto")
    entry["images"] = {"primary": "observation/rgb"}
    entry["action"]["translation"] = {"key": "action/world_vector", "slice": [0, 4]}
    entry["instruction"] = {"key": "observation/image"}
    mix = tmp_path / "robot.yaml"
    mix.write_text(
        yaml.safe_dump(
            {"datasets": {"my_robot": 1.0}, "dataset_configs": {"my_robot": {**entry, "rlds_dirs": ["toto"]}}}
        )
    )
    out = tmp_path / "out"
    args = ["--mixture", str(mix), "--data-dir", str(sample_corpus), "--out", str(out), *FAST]
    assert main([*args, "--dry-run"]) == 2
    captured = capfd.readouterr()
    (row,) = json.loads(captured.out)["datasets"]
    assert row["found"] and row["key_problems"] == [
        "action.translation key 'action/world_vector' has 3 value(s) per step, slice [0, 4] needs 4",
        "image key 'observation/rgb' is not in features.json (its images: observation/image)",
        "instruction key 'observation/image' is an image in features.json, not text",
    ]
    assert [x for x in captured.err.splitlines() if x.startswith("error:")] == [
        f"error: {mix}: dataset 'my_robot': {row['key_problems'][0]} (and 2 more)"
    ]
    assert main(args) == 2
    assert one_error(capfd).endswith("(and 2 more); correct the config")
    assert not out.exists()


def test_a_camera_key_that_is_not_a_camera_is_refused_by_the_plan(sample_corpus, tmp_path, capfd):
    """berkeley_autolab_ur5's image_with_depth (a float32 TFDS image: a depth map's bytes as PNG) and its
    float state named as cameras: the run stops before any work, as for a missing key."""
    registry = load_registry()
    cfg = registry.datasets["berkeley_autolab_ur5"]
    fields = RLDSDataset(find_dataset_dir(str(sample_corpus), cfg.name, cfg.version, cfg.rlds_dirs)).fields
    state = fields["observation/robot_state"]
    entry = registry_entry("berkeley_autolab_ur5")
    entry["images"] = {"primary": "observation/image_with_depth", "wrist": "observation/robot_state"}
    mix = tmp_path / "robot.yaml"
    mix.write_text(yaml.safe_dump({"datasets": {"ur5_depth": 1.0}, "dataset_configs": {"ur5_depth": {
        **entry, "rlds_dirs": [cfg.name]}}}))  # fmt: skip
    out = tmp_path / "out"
    args = ["--mixture", str(mix), "--data-dir", str(sample_corpus), "--out", str(out), *FAST]
    assert main([*args, "--dry-run"]) == 2
    (row,) = json.loads(capfd.readouterr().out)["datasets"]
    assert row["key_problems"] == [
        "image key 'observation/image_with_depth' is a float32 image (a depth map?), not a camera frame in "
        "features.json",
        f"image key 'observation/robot_state' is a {state.dtype} tensor of shape {list(state.shape)}, not a camera "
        "frame in features.json",
    ]
    assert main(args) == 2 and not out.exists()


# ---------------------------------------------------------------- a given grid


def test_a_given_grid_is_recorded_kept_or_refused(bridge_root, tmp_path, capfd):
    from grids import rediscretize

    out = tmp_path / "out"
    base = ["--mixture", "bridge", "--data-dir", str(bridge_root), "--out", str(out), *FAST]
    assert main(base) == 0
    new = tmp_path / "new.json"
    assert rediscretize.main(["--base", str(out / "grids" / "bridge.json"), "--data", str(out), "--out", str(new),
                              "--fit", "empirical", "--retokenize", str(out)]) == 0  # fmt: skip
    retokenized = read_json(str(out / "manifest.json"))["grid"]
    assert retokenized.startswith("grids/bridge.r-")
    before = file_hashes(out)
    capfd.readouterr()

    assert main([*base, "--stages", "export"]) == 2  # would restore the fitted grid: refused
    line = one_error(capfd)
    assert f"is tokenized with a given grid ({retokenized})" in line and f"--grid {out / retokenized}" in line
    assert file_hashes(out) == before

    assert main([*base, "--stages", "export", "--grid", str(out / retokenized)]) == 0
    m = verify_manifest(str(out))
    src = m["grid_source"]
    assert src["kind"] == "given" and src["path"] == str(out / retokenized)
    assert src["sha256"] == hashlib.sha256((out / retokenized).read_bytes()).hexdigest()
    assert src["made_by"].startswith("grids.rediscretize (empirical fit")
    grid = ActionGrid.load(str(new))
    t = read_rows(out, m, "bridge_orig")
    action = np.stack(t.column("action").to_numpy(zero_copy_only=False))
    tokens = np.stack(t.column("action_tokens").to_numpy(zero_copy_only=False))
    np.testing.assert_array_equal(tokens, ActionTokenizer(grid).encode(action))
    assert ActionGrid.load(str(out / m["grid"])).to_json() == grid.to_json()

    capfd.readouterr()
    assert main([*base, "--grid", str(out / retokenized)]) == 0  # the same again: nothing to do
    assert capfd.readouterr().out.startswith("up to date:")
    assert main(base) == 2  # a full run without --grid would fit a new one
    assert "--overwrite to fit a new grid" in one_error(capfd)
    assert main([*base, "--overwrite"]) == 0
    assert read_json(str(out / "manifest.json"))["grid_source"] == {"kind": "fitted", "fit": "gaussian"}

    (tmp_path / "notagrid.json").write_text('{"num_bins": 3}')
    assert main([*base, "--grid", str(tmp_path / "notagrid.json")]) == 2
    assert "--grid: " in one_error(capfd)


# ---------------------------------------------------------------- --stages export with other settings


CHANGES = [
    (["--normalization", "normal"], "--normalization"),
    (["--seed", "3"], "--seed"),
    (["--grid-fit", "empirical"], "--grid-fit empirical"),
    (["--grid-exclude", "kuka"], "the datasets fitted on"),
    (["--max-episodes", "10"], "were not computed from its current input"),
    (["--split", "train[:50%]"], "were not computed from its current input"),
]


def test_stages_export_refuses_a_grid_or_statistics_made_for_other_settings(bridge_root, sample_corpus, tmp_path,
                                                                           capfd):  # fmt: skip
    data = tmp_path / "data"
    data.mkdir()
    (data / "bridge_dataset").symlink_to(bridge_root / "bridge_dataset")
    (data / "kuka").symlink_to(sample_corpus / "kuka")
    mix = tmp_path / "mix.yaml"
    mix.write_text("name: two\ndatasets: {bridge_orig: 1.0, kuka: 1.0}\n")
    out = tmp_path / "out"
    args = ["--mixture", str(mix), "--data-dir", str(data), "--out", str(out), *FAST]
    assert main([*args, "--stages", "stats,grids"]) == 0
    capfd.readouterr()
    for change, named in CHANGES:
        assert main([*args, "--stages", "export", *change]) == 2, change
        assert named in one_error(capfd), change
    mix.write_text("name: two\ndatasets: {bridge_orig: 1.0, kuka: 3.0}\n")  # other weights: another grid
    assert main([*args, "--stages", "export"]) == 2
    assert "the mixture's weights" in one_error(capfd)
    assert not (out / "manifest.json").exists()
    mix.write_text("name: two\ndatasets: {bridge_orig: 1.0, kuka: 1.0}\n")
    assert main([*args, "--stages", "depth"]) == 2  # depth runs within the export: alone it would do nothing
    assert "--stages depth,export" in one_error(capfd)
    assert main([*args, "--stages", "export"]) == 0  # as the grid and statistics were made: exported


# ---------------------------------------------------------------- hostile classes


def test_two_datasets_whose_rlds_files_have_the_same_names(bridge_root, tmp_path):
    """Episode ids are file#index: two datasets converted by one builder share them; neither loses any."""
    entry = {**registry_entry("bridge_orig"), "rlds_dirs": ["bridge_dataset"]}
    (tmp_path / "copy").mkdir()
    shutil.copytree(bridge_root / "bridge_dataset", tmp_path / "copy" / "bridge_dataset")
    mix = tmp_path / "twins.yaml"
    mix.write_text(yaml.safe_dump({
        "name": "twins",
        "datasets": {"robot_a": 1.0, "robot_b": {"weight": 1.0, "data_dir": "copy"}},
        "dataset_configs": {"robot_a": entry, "robot_b": entry},
    }))  # fmt: skip
    out = tmp_path / "out"
    assert main(["--mixture", str(mix), "--data-dir", str(bridge_root), "--out", str(out), *FAST]) == 0
    m = verify_manifest(str(out))
    a, b = read_rows(out, m, "robot_a"), read_rows(out, m, "robot_b")
    assert a.num_rows == b.num_rows == 200
    assert a.column("episode_id").to_pylist() == b.column("episode_id").to_pylist()
    assert a.column("raw_action").equals(b.column("raw_action"))


def test_paths_that_look_like_glob_patterns_are_taken_literally(bridge_root, tmp_path):
    plain = tmp_path / "plain"
    assert main(["--mixture", "bridge", "--data-dir", str(bridge_root), "--out", str(plain), *FAST]) == 0
    data = tmp_path / "data [v1]*?"
    data.mkdir()
    (data / "bridge_dataset").symlink_to(bridge_root / "bridge_dataset")
    odd = tmp_path / "out [1]*?"
    assert main(["--mixture", "bridge", "--data-dir", str(data), "--out", str(odd), *FAST]) == 0
    shards = sorted(p.relative_to(plain) for p in plain.glob("shards/*/*"))
    assert shards == sorted(p.relative_to(odd) for p in odd.glob("shards/*/*")) and shards
    for rel in shards:
        assert (plain / rel).read_bytes() == (odd / rel).read_bytes()
    # a stray temporary of a killed run under such an OUT is found and removed
    stray = odd / "shards" / "bridge_orig" / "train-00000-of-00001.arrow.tmp-1-abc"
    stray.write_bytes(b"")
    assert main(["--mixture", "bridge", "--data-dir", str(data), "--out", str(odd), *FAST, "--image-size", "24"]) == 0
    assert not stray.exists()
    # the default frame cache keeps only the frames the last run used: those at 24 px
    (key,) = (odd / ".cache" / "frames" / "bridge_orig").iterdir()
    assert len(list(key.glob("*.arrow"))) == 4  # 25 episodes in tasks of 8


def test_a_manifest_never_names_a_file_outside_out_shards(bridge_root, tmp_path, capfd):
    out = tmp_path / "out"
    base = ["--mixture", "bridge", "--data-dir", str(bridge_root), "--out", str(out), *FAST]
    assert main(base) == 0
    victims = [tmp_path / "victim.arrow", tmp_path / "elsewhere" / "x.arrow"]
    for v in victims:
        v.parent.mkdir(exist_ok=True)
        v.write_bytes(b"not yours")
    (out / "shards" / "link").symlink_to(tmp_path / "elsewhere")
    m = json.loads((out / "manifest.json").read_text())
    listed = m["datasets"]["bridge_orig"]["shards"]
    for path in ("../victim.arrow", str(victims[0]), "shards/../../victim.arrow", "shards/link/x.arrow"):
        listed.append({**listed[0], "path": path})
    (out / "manifest.json").write_text(json.dumps(m))
    capfd.readouterr()
    assert main([*base, "--image-size", "24"]) == 0  # a rerun removes the shards the manifest lists...
    err = capfd.readouterr().err
    assert all(v.read_bytes() == b"not yours" for v in victims)  # ...under OUT/shards only, and says so
    assert err.count("left alone") == 4
    from pipeline.export import main as export_main

    m = json.loads((out / "manifest.json").read_text())
    m["datasets"]["bridge_orig"]["shards"][0]["path"] = "shards/link/x.arrow"
    m["datasets"]["bridge_orig"]["shards"][0]["bytes"] = len(b"not yours")
    m["datasets"]["bridge_orig"]["shards"][0]["sha256"] = hashlib.sha256(b"not yours").hexdigest()
    (out / "manifest.json").write_text(json.dumps(m))
    assert export_main([str(out), "--image-size", "16"]) == 2  # a rewrite would write beside it and remove it
    assert "shard path 'shards/link/x.arrow' is not under" in one_error(capfd)
    assert all(v.read_bytes() == b"not yours" for v in victims)


# ---------------------------------------------------------------- nothing empty passes


def test_a_dataset_that_loses_every_episode_fails_and_counts_them(bridge_root, tmp_path, capfd):
    from tests.pipeline.test_faults import rewrite_records

    data = tmp_path / "data" / "bridge_dataset"
    shutil.copytree(bridge_root / "bridge_dataset", data)

    def no_image(i, f):
        frames = f["steps/observation/image_0"].bytes_list.value
        frames[1] = b"not a jpeg"  # step 1: Bridge drops step 0

    rewrite_records(data / "1.0.0" / "bridge_dataset-train.tfrecord-00000-of-00001", no_image)
    out = tmp_path / "out"
    assert main(["--mixture", "bridge", "--data-dir", str(tmp_path / "data"), "--out", str(out), *FAST]) == 1
    line = one_error(capfd)
    assert line == (f"error: dataset 'bridge_orig': all 25 episode(s) lost, none left to export "
                    f"(25 x bad image: frame 0: not an image; see {out / 'report.json'})")  # fmt: skip
    report = read_json(str(out / "report.json"))
    assert report["episodes_lost"] == 25 and report["failure"] == line[len("error: ") :]
    assert report["datasets"]["bridge_orig"]["episodes_lost"] == 25
    assert not (out / "manifest.json").exists()


def test_lost_episodes_are_counted_once_however_the_work_is_sliced(sample_corpus):
    """A key a dataset's records lack loses every episode of every task: one record per episode, the
    same from a task per shard (statistics) and from tasks of one episode (the export)."""
    from dataclasses import replace

    from pipeline.report import Report
    from sources.episodes import plan_reads, standard_episodes

    cfg = replace(load_registry().datasets["toto"], primary_image="observation/rgb")
    ds = RLDSDataset(str(sample_corpus / "toto" / "0.1.0"), "toto")
    report = Report()
    for per_task in (None, 1, 2):
        for task in plan_reads({"toto": ds}, "train+val", None, per_task):
            report.add_problems(list(standard_episodes(task, cfg, images=True, dataset=ds)))
    assert report.episodes_lost() == 3 == sum(ds.splits.values())  # 2 train + 1 val, each once
    assert sorted(p["episode_id"] for p in report.problems) == [
        "toto-train.tfrecord-00000-of-00001#0", "toto-train.tfrecord-00000-of-00001#1",
        "toto-val.tfrecord-00000-of-00001#0"]  # fmt: skip


# ---------------------------------------------------------------- frames of another size than the config's


def test_frames_of_another_size_than_the_configs_image_size_are_said_once(bridge_root, tmp_path, capfd):
    from PIL import Image

    from sources.rlds import RLDSDataset as DS

    ds = DS(str(bridge_root / "bridge_dataset" / "1.0.0"), "bridge_orig")
    (first,) = [e for e, _ in zip(ds.episodes("train", keys=["observation/image_0"]), range(1))]
    with Image.open(io.BytesIO(first.steps["observation/image_0"][0])) as im:
        w, h = im.size
    assert (h, w) != (256, 256)  # this slice is stored smaller than the release the registry describes
    out = tmp_path / "out"
    assert main(["--mixture", "bridge", "--data-dir", str(bridge_root), "--out", str(out), *FAST]) == 0
    note = (f"dataset 'bridge_orig': its frames are {h}x{w} (25 of 25 episode(s)) (H x W), its config says "
            "image_size [256, 256] ([H, W])")  # fmt: skip
    captured = capfd.readouterr()
    assert (captured.out + captured.err).count(note) == 1
    assert len([x for x in read_json(str(out / "report.json"))["notes"] if x.startswith(note)]) == 1
