"""The trainer's reader on a hand-built export: weights, epochs across workers and ranks, resume, chunks."""

import io
import itertools
import json

import numpy as np
import pyarrow as pa
import pytest
import torch
from PIL import Image
from scipy.stats import chisquare

from shards.manifest import ManifestError
from shards.reader import MixtureDataset
from shards.schema import shard_name, shard_schema, write_table
from storage.files import sha256_file
from tests.shards.exports import build_export, write_manifest, write_shard

WEIGHTS = {"a": 1.0, "b": 2.0, "c": 0.5}
EPISODES = {"a": [5, 9, 3, 7, 6, 4], "b": [10, 2, 8], "c": [3, 3, 3, 3, 3, 3, 3, 3]}  # steps per episode
ABSOLUTE = {"c": [True] + [False] * 6}  # "a" and "b" use the default: only the gripper is absolute


def action_of(code, step):
    """A step's action: dims 0-1 identify the row, dim 2 is constant, the gripper alternates."""
    return [code, -code, 0.5, 0, 0, 0, float(step % 2)]


def jpeg(value):
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    datasets = {}
    for name, lengths in EPISODES.items():
        shards, per_shard = [], [lengths[: len(lengths) // 2], lengths[len(lengths) // 2 :]]
        for i, eps in enumerate(per_shard):
            rows = {k: [] for k in shard_schema().names}
            for e, t in enumerate(eps):
                eid = f"{name}-{i}#{e}"
                for s in range(t):
                    rows["dataset"].append(name)
                    rows["episode_id"].append(eid)
                    rows["step"].append(s)
                    rows["is_first"].append(s == 0)
                    rows["is_last"].append(s == t - 1)
                    rows["language_instruction"].append(f"task {name}")
                    rows["image"].append(jpeg(s * 10))
                    code = 1000 * (i * 100 + e) + s  # identifies the row
                    rows["action"].append(action_of(code, s))
                    rows["raw_action"].append(action_of(code, s))
                    rows["action_tokens"].append([code % 4096, 4096, 8193])
            table = pa.Table.from_pydict(rows, schema=shard_schema())
            path = out / "shards" / name / shard_name("train", i, 2)
            shards.append(write_shard(out, path, table, rows_per_batch=4))  # several batches per shard
        datasets[name] = {"shards": shards}
        if name in ABSOLUTE:
            datasets[name]["absolute_action_mask"] = ABSOLUTE[name]
    write_manifest(out, datasets, WEIGHTS)
    return out


def key(step):
    return step["episode_id"], int(step["step"])


def all_steps():
    return {
        (f"{n}-{i}#{e}", s)
        for n, lengths in EPISODES.items()
        for i, eps in enumerate([lengths[: len(lengths) // 2], lengths[len(lengths) // 2 :]])
        for e, t in enumerate(eps)
        for s in range(t)
    }


@pytest.mark.parametrize("balance", [True, False])
def test_stream_frequencies_match_the_effective_weights(export, balance):
    ds = MixtureDataset(str(export), mode="stream", balance=balance, shuffle_buffer=64, seed=3)
    n = 6000
    counts = {k: 0 for k in WEIGHTS}
    for _, step in zip(range(n), ds):
        counts[step["dataset"]] += 1
    sizes = {k: sum(v) for k, v in EPISODES.items()}
    raw = {k: WEIGHTS[k] * (sizes[k] if balance else 1) for k in WEIGHTS}
    expected = np.array([raw[k] / sum(raw.values()) * n for k in WEIGHTS])
    stat, p = chisquare([counts[k] for k in WEIGHTS], expected)
    assert p > 0.001, (counts, expected)


def test_epoch_is_disjoint_and_complete_across_ranks_and_workers(export):
    seen = []
    for rank in range(2):
        ds = MixtureDataset(str(export), mode="epoch", shuffle_buffer=16, seed=1, rank=rank, world_size=2)
        loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
        seen += [key(s) for s in loader]
    assert len(seen) == len(set(seen)) and set(seen) == all_steps()


def test_same_seed_same_sequence_and_shuffled(export):
    a = [key(s) for s in MixtureDataset(str(export), mode="epoch", shuffle_buffer=32, seed=7)]
    b = [key(s) for s in MixtureDataset(str(export), mode="epoch", shuffle_buffer=32, seed=7)]
    c = [key(s) for s in MixtureDataset(str(export), mode="epoch", shuffle_buffer=32, seed=8)]
    assert a == b and a != c and set(a) == all_steps()


def test_resume_continues_exactly(export):
    whole = [key(s) for _, s in zip(range(300), MixtureDataset(str(export), mode="stream", shuffle_buffer=20, seed=5))]
    first = MixtureDataset(str(export), mode="stream", shuffle_buffer=20, seed=5)
    it = iter(first)
    head = [key(next(it)) for _ in range(137)]
    state = json.loads(json.dumps(first.state_dict()))  # survives a round trip through a checkpoint file
    second = MixtureDataset(str(export), mode="stream", shuffle_buffer=20, seed=5)
    second.load_state_dict(state)
    tail = [key(s) for _, s in zip(range(163), second)]
    assert head + tail == whole


def test_action_chunks_pad_each_dimension_by_its_kind(export):
    """Past an episode's end: absolute dimensions repeat the last real value, relative ones are 0.0
    (the public OXE chunking); the manifest's absolute_action_mask says which is which."""
    ds = MixtureDataset(str(export), mode="epoch", shuffle_buffer=1, seed=0, chunk=4)
    padded = 0
    for step in ds:
        t = EPISODES[step["dataset"]]
        eid, s = key(step)
        shard, e = eid.split("-")[1].split("#")
        lengths = t[: len(t) // 2] if shard == "0" else t[len(t) // 2 :]
        length = lengths[int(e)]
        base = 1000 * (int(shard) * 100 + int(e))
        absolute = ABSOLUTE.get(step["dataset"], [False] * 6 + [True])
        last = action_of(base + length - 1, length - 1)
        expected = [
            action_of(base + s + k, s + k) if s + k < length else [v if a else 0.0 for v, a in zip(last, absolute)]
            for k in range(4)
        ]
        np.testing.assert_array_equal(step["action_chunk"], np.array(expected, np.float32))
        assert step["chunk_mask"].tolist() == [s + k < length for k in range(4)]
        assert step["token_chunk"][:, 0].tolist() == [(base + min(s + k, length - 1)) % 4096 for k in range(4)]
        padded += s + 3 >= length
    assert padded > 0


def test_a_bad_absolute_action_mask_is_refused(export, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(export, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["datasets"]["b"]["absolute_action_mask"] = [True, False]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(
        ManifestError, match=r"datasets\.b\.absolute_action_mask must be 7 booleans, got \[True, False\]"
    ):
        MixtureDataset(str(copy))


def test_decoded_images_equal_pil(export):
    step = next(iter(MixtureDataset(str(export), mode="epoch", decode_images=True, seed=0)))
    expected = np.asarray(Image.open(io.BytesIO(jpeg(int(step["step"]) * 10))).convert("RGB"))
    np.testing.assert_array_equal(step["image"], expected)


def test_a_changed_or_missing_shard_is_refused_when_read_not_at_construction(export, tmp_path):
    """Construction reads the manifest only; a shard is checked when first opened (size, checksum pin)."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(export, copy)
    shard = copy / json.loads((copy / "manifest.json").read_text())["datasets"]["b"]["shards"][1]["path"]
    data = shard.read_bytes()
    shard.write_bytes(data[:-10])
    ds = MixtureDataset(str(copy), mode="epoch")  # no error: no shard is opened here
    with pytest.raises(
        ManifestError, match=r"^shard shards/b/train-00001-of-00002.arrow of dataset 'b': \d+ bytes, the manifest says"
    ):
        list(ds)
    shard.unlink()
    with pytest.raises(ManifestError, match=r"^shard shards/b/train-00001-of-00002.arrow of dataset 'b': missing$"):
        list(MixtureDataset(str(copy), mode="epoch"))


def rewrite_shard(out, dataset, index, table, rows=False):
    """Replace a shard's contents and make the manifest agree on its size, hash and checksum pin (a
    manifest that was written wrongly, or files swapped and the entry patched): only the checks of
    the shard's contents can tell."""
    manifest = json.loads((out / "manifest.json").read_text())
    entry = manifest["datasets"][dataset]["shards"][index]
    path = out / entry["path"]
    with open(path, "wb") as f:
        entry.update(write_table(f, table, rows_per_batch=4))
    entry.update(bytes=path.stat().st_size, sha256=sha256_file(str(path)))
    if rows:
        delta = table.num_rows - entry["num_rows"]
        entry["num_rows"] = table.num_rows
        manifest["datasets"][dataset]["num_transitions"] += delta  # the manifest stays consistent
    (out / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def read_shard(out, dataset, index):
    manifest = json.loads((out / "manifest.json").read_text())
    with pa.memory_map(str(out / manifest["datasets"][dataset]["shards"][index]["path"])) as src:
        return pa.ipc.open_file(src).read_all()


def test_a_shard_of_another_dataset_or_row_count_is_refused(export, tmp_path):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(export, other)
    table = read_shard(export, "a", 0)
    # c's valid shard where a's should be (entry patched, counts and weights made to agree)
    manifest = rewrite_shard(other, "a", 0, read_shard(other, "c", 0), rows=True)
    manifest["datasets"]["a"]["shards"][0]["num_episodes"] = 4
    manifest["datasets"]["a"]["num_trajectories"] = sum(s["num_episodes"] for s in manifest["datasets"]["a"]["shards"])
    manifest.pop("effective_weights"), manifest.pop("unbalanced_weights")
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match=r"train-00000-of-00002.arrow of dataset 'a': rows of dataset\(s\) \['c'\]"):
        list(MixtureDataset(str(other), mode="epoch"))
    copy = tmp_path / "copy"
    shutil.copytree(export, copy)
    rewrite_shard(copy, "a", 0, table.slice(0, table.num_rows - 3))
    with pytest.raises(ManifestError, match=rf"of dataset 'a': {table.num_rows - 3} rows, the manifest says"):
        list(MixtureDataset(str(copy), mode="epoch"))
    rewrite_shard(copy, "a", 0, table.drop_columns(["image"]))
    with pytest.raises(ManifestError, match=r"of dataset 'a': no column\(s\) \['image'\]"):
        list(MixtureDataset(str(copy), mode="epoch"))
    # rows of the right count, one episode fewer than the manifest says
    flags = table.column("is_last").to_pylist()
    flags[4] = False  # the first episode (5 steps) runs into the second
    merged = table.set_column(4, "is_last", pa.array(flags))
    rewrite_shard(copy, "a", 0, merged)
    with pytest.raises(ManifestError, match=r"of dataset 'a': 2 episodes, the manifest says 3"):
        list(MixtureDataset(str(copy), mode="epoch"))
    # the right shard with a stale checksum pin in the manifest: refused as the shard is opened
    rewrite_shard(copy, "a", 0, table)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["datasets"]["a"]["shards"][0]["checksums_sha256"] = "0" * 64
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match="its checksum table does not match the manifest"):
        list(MixtureDataset(str(copy), mode="epoch"))
    assert len(list(MixtureDataset(str(copy), mode="epoch", verify=False))) == len(all_steps())  # trusted


@pytest.mark.parametrize("chunk", [None, 3])
def test_steps_a_sample_filter_marks_are_never_drawn_unless_their_chunk_moves(export, tmp_path, chunk):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(export, copy)
    table = read_shard(export, "b", 0)  # b's first shard: one episode of 10 steps
    steps = table.column("step").to_numpy()
    moves = np.isin(steps, [2, 3, 7])  # everything else stands still
    rewrite_shard(copy, "b", 0, table.append_column("sampled", pa.array(moves)))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["columns"] = sorted(set(shard_schema().names) | {"sampled"})
    (copy / "manifest.json").write_text(json.dumps(manifest))
    ds = MixtureDataset(str(copy), mode="epoch", chunk=chunk, seed=0)
    drawn = sorted(int(s["step"]) for s in ds if s["dataset"] == "b" and s["episode_id"].startswith("b-0#"))
    k = chunk or 1
    expected = [t for t in range(10) if moves[t : t + k].any()]  # chunks stop at the episode's end
    assert drawn == expected
    assert drawn == ([2, 3, 7] if chunk is None else [0, 1, 2, 3, 5, 6, 7])


def test_hugging_face_datasets_reads_an_export_with_images_as_images(export, tmp_path):
    import datasets

    from shards.huggingface import load_export

    ds = load_export(str(export), "b", cache_dir=str(tmp_path / "hf"))
    assert isinstance(ds.features["image"], datasets.Image)
    assert ds.features["action"] == datasets.List(datasets.Value("float32"), length=7)
    manifest = json.loads((export / "manifest.json").read_text())
    tables = [read_shard(export, "b", i) for i in range(len(manifest["datasets"]["b"]["shards"]))]
    table = pa.concat_tables(tables)
    assert len(ds) == table.num_rows == manifest["datasets"]["b"]["num_transitions"]
    for i in (0, 7, len(ds) - 1):
        row = ds[i]
        assert isinstance(row["image"], Image.Image)
        expected = np.asarray(Image.open(io.BytesIO(table.column("image")[i].as_py())).convert("RGB"))
        np.testing.assert_array_equal(np.asarray(row["image"]), expected)
        np.testing.assert_array_equal(np.float32(row["action"]), np.float32(table.column("action")[i].as_py()))
        assert row["episode_id"] == table.column("episode_id")[i].as_py()
    with pytest.raises(pa.ArrowInvalid):  # IPC files, not streams: the reason load_export exists
        datasets.Dataset.from_file(str(export / manifest["datasets"]["b"]["shards"][0]["path"]))


# ---------------------------------------------------------------- items as PyTorch users batch them


@pytest.fixture(scope="module")
def wrist_export(tmp_path_factory):
    """b has a wrist camera, a and c do not; input_ids (variable length) from --text-tokenizer."""
    out = tmp_path_factory.mktemp("wrist")
    build_export(out, {"a": [[4, 5]], "b": [[6, 3], [5]], "c": [[7]]}, {"a": 1.0, "b": 1.0, "c": 1.0},
                 wrist=("b",), rows_per_batch=4, text=True)  # fmt: skip
    return out


@pytest.mark.filterwarnings("error")  # no warning on any of the reader's paths (workers inherit the filter)
@pytest.mark.parametrize("decode", [False, True])
def test_every_item_has_the_mixtures_keys_and_default_collate_batches_them(wrist_export, decode):
    columns = [c for c in shard_schema(with_wrist=True).names]  # every column but the variable-length input_ids
    ds = MixtureDataset(
        str(wrist_export), mode="epoch", shuffle_buffer=8, seed=2, decode_images=decode, columns=columns
    )
    items = list(ds)
    assert {i["dataset"] for i in items} == {"a", "b", "c"}
    assert all(set(i) == set(columns) | {"has_wrist_image"} for i in items)
    for i in items:
        assert i["has_wrist_image"] == (i["dataset"] == "b")
        if not decode:
            assert i["wrist_image"] == (jpeg(200) if i["dataset"] == "b" else b"")
        elif i["dataset"] == "b":
            np.testing.assert_array_equal(
                i["wrist_image"], np.asarray(Image.open(io.BytesIO(jpeg(200))).convert("RGB"))
            )
        else:
            assert i["wrist_image"].shape == i["image"].shape and not i["wrist_image"].any()
    loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=2)  # torch's default_collate
    batches = list(loader)
    assert sum(len(b["dataset"]) for b in batches) == len(items) == 30
    b = batches[0]
    assert (
        b["action"].shape == (8, 7) and b["action"].dtype == torch.float32 and b["has_wrist_image"].dtype == torch.bool
    )
    if decode:
        assert b["wrist_image"].shape == b["image"].shape == (8, 8, 8, 3)
    for batch in batches:  # the batch's masks say which wrist images are real
        assert batch["has_wrist_image"].tolist() == [d == "b" for d in batch["dataset"]]


@pytest.mark.filterwarnings("error")
def test_collate_pads_the_variable_length_input_ids(wrist_export):
    from shards.reader import collate

    ds = MixtureDataset(str(wrist_export), mode="epoch", shuffle_buffer=8, seed=2, chunk=2)
    items = list(ds)[:8]
    with pytest.raises(RuntimeError):  # default_collate cannot stack ids of different lengths
        torch.utils.data.default_collate(items)
    batch = collate(items)
    lengths = [2 + int(i["step"]) % 3 for i in items]
    assert batch["input_ids"].shape == (8, max(lengths)) and batch["input_ids_mask"].sum(1).tolist() == lengths
    for row, n in zip(batch["input_ids"].tolist(), lengths):
        assert row == list(range(7, 7 + n)) + [0] * (max(lengths) - n)
    assert batch["action_chunk"].shape == (8, 2, 7) and batch["action_input_ids"].shape == (8, 3)
    loaded = next(iter(torch.utils.data.DataLoader(ds, batch_size=8, num_workers=2, collate_fn=collate)))
    assert loaded["input_ids"].shape[0] == 8


# ---------------------------------------------------------------- disjoint mode keeps the weights


def test_disjoint_mode_keeps_every_weight_with_datasets_smaller_than_the_slots(tmp_path):
    """16 slots: "big" (200 rows) and "mid" (24 rows) are spread (each slot its own rows), "tiny" (3 rows)
    is shared by all slots; over every slot's stream each dataset's share is its weight."""
    build_export(tmp_path, {"big": [[40] * 5], "mid": [[8] * 3], "tiny": [[3]]}, {"big": 1.0, "mid": 1.0, "tiny": 1.0})
    ds = MixtureDataset(str(tmp_path), mode="disjoint", balance=False, shuffle_buffer=4, seed=0)
    slots, n = 16, 600
    counts = {"big": 0, "mid": 0, "tiny": 0}
    rows = {"big": [], "mid": []}
    for slot in range(slots):
        mine = list(itertools.islice(ds.indices(slot, slots), n))
        seen = {d: [r for s, r in mine if s.dataset == d] for d in counts}
        assert seen["tiny"], f"slot {slot} never draws the tiny dataset"
        for d in counts:
            counts[d] += len(seen[d])
        for d in rows:
            rows[d].append({(s.path, r) for s, r in mine if s.dataset == d})
    stat, p = chisquare(list(counts.values()), [slots * n / 3] * 3)  # balance=False: equal weights
    assert p > 0.001, counts
    for d, total in (("big", 200), ("mid", 24)):  # spread: every row drawn by exactly one slot
        assert sum(len(r) for r in rows[d]) == len(set().union(*rows[d])) == total


# ---------------------------------------------------------------- a manifest that contradicts itself


def _mutations():
    def shard(m):
        return m["datasets"]["b"]["shards"][1]

    return [
        (lambda m: m["datasets"]["b"].update(num_transitions=21), r"datasets\.b\.num_transitions is 21, its shards hold 20 rows"),
        (lambda m: m["datasets"]["b"].update(num_trajectories=4), r"datasets\.b\.num_trajectories is 4, its shards hold 3 episodes"),
        (lambda m: shard(m).update(num_episodes=11), r"datasets\.b\.shards\[1\]\.num_episodes is 11 for 10 rows"),
        (lambda m: shard(m).update(num_rows=-1), r"datasets\.b\.shards\[1\]\.num_rows must be a count >= 0, got -1"),
        (lambda m: shard(m).update(sha256="xyz"), r"datasets\.b\.shards\[1\]\.sha256 is not a sha256 hex digest"),
        (lambda m: shard(m).update(checksums_sha256=None), r"datasets\.b\.shards\[1\]\.checksums_sha256 is not a sha256"),
        (lambda m: shard(m).update(path=m["datasets"]["a"]["shards"][0]["path"]), r"datasets\.b\.shards\[1\]\.path 'shards/a/train-00000-of-00002.arrow' is also datasets\.a\.shards\[0\]\.path"),
        (lambda m: m["weights"].pop("c"), r"weights has no entry for dataset 'c'"),
        (lambda m: m["weights"].update(d=1.0), r"weights\.d names no dataset of the manifest"),
        (lambda m: m["weights"].update(a=-1.0), r"weights\.a must be a finite number >= 0, got -1\.0"),
        (lambda m: m["weights"].update(a=0, b=0, c=0), r"weights are all 0"),
        (lambda m: m["effective_weights"].update(a=0.5), r"effective_weights\.a is 0\.5, its weights x num_transitions give 0\.39534883"),  # 34 / (34 + 2 x 20 + 0.5 x 24)
        (lambda m: m["unbalanced_weights"].update(c=0.5), r"unbalanced_weights\.c is 0\.5, its weights give 0\.142857"),
        (lambda m: m["effective_weights"].pop("c"), r"effective_weights must name exactly the datasets \['a', 'b', 'c'\]"),
    ]  # fmt: skip


@pytest.mark.parametrize("mutate,message", _mutations())
def test_a_manifest_whose_counts_or_weights_contradict_is_refused_in_one_line(export, tmp_path, mutate, message):
    manifest = json.loads((export / "manifest.json").read_text())
    mutate(manifest)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match=r"^\S*manifest.json: " + message) as e:
        MixtureDataset(str(tmp_path))
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------- a synthetic export says so, once


def test_a_synthetic_export_warns_once_per_process(export, tmp_path):
    import shutil
    import warnings

    from shards.manifest import SyntheticDataWarning

    copy = tmp_path / "copy"
    shutil.copytree(export, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["synthetic"] = True
    manifest["inputs"] = {"a": {"synthetic": True}, "b": {"synthetic": True}, "c": {"synthetic": False}}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = MixtureDataset(str(copy), mode="epoch")
        MixtureDataset(str(copy), mode="stream")
        list(torch.utils.data.DataLoader(ds, batch_size=8, num_workers=2))  # workers do not construct: silent
        MixtureDataset(str(export))  # no "synthetic" key: real data, no warning
    lines = [str(w.message) for w in caught if issubclass(w.category, SyntheticDataWarning)]
    assert len(lines) == 1 and "synthetic sample corpus (datasets a, b)" in lines[0] and "\n" not in lines[0]


def test_build_datasets_warns_once_for_a_synthetic_export(tmp_path):
    import warnings

    from shards.manifest import SyntheticDataWarning
    from shards.spatialvla import build_datasets
    from tests.shards.test_spatialvla import build, data_args

    out = build(tmp_path / "export")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["synthetic"] = True
    (out / "manifest.json").write_text(json.dumps(manifest))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_datasets(data_args(out), None)
        build_datasets(data_args(out), None)
    assert sum(issubclass(w.category, SyntheticDataWarning) for w in caught) == 1


@pytest.mark.filterwarnings("error")
def test_proprio_of_different_sizes_is_padded_by_collate(tmp_path):
    """a: 7 proprio dims, b: 8, c: none. has_proprio says which rows have any; collate pads to 8."""
    from shards.reader import collate

    build_export(tmp_path, {"a": [[5]], "b": [[6]], "c": [[4]]}, {"a": 1.0, "b": 1.0, "c": 1.0},
                 proprio={"a": 7, "b": 8})  # fmt: skip
    ds = MixtureDataset(str(tmp_path), mode="epoch", shuffle_buffer=4, seed=0)
    items = list(ds)
    assert [len(i["proprio"]) for i in items if i["dataset"] != "c"] == [
        {"a": 7, "b": 8}[i["dataset"]] for i in items if i["dataset"] != "c"
    ]
    for i in items:
        assert i["has_proprio"] == (i["dataset"] != "c")
        if i["dataset"] != "c":
            assert i["proprio"].tolist() == [float(i["step"])] * len(i["proprio"])
        else:
            assert not i["proprio"].any()
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=15, collate_fn=collate)))
    assert batch["proprio"].shape == (15, 8) and batch["proprio_mask"].shape == (15, 8)
    for d, mask, has in zip(batch["dataset"], batch["proprio_mask"].tolist(), batch["has_proprio"].tolist()):
        assert has == (d != "c") and (d != "a" or mask == [True] * 7 + [False])
    batches = list(torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate))
    assert sum(len(b["dataset"]) for b in batches) == 15
