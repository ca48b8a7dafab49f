"""shards.spatialvla on a hand-built export, against the shard rows read with pyarrow and numpy by hand:
their item layout with a stand-in processor, the action chunk, the observation window, unlabeled episodes
and a sample filter, weights, rank x worker disjointness, len(), resume through a real DataLoader from a
transformers checkpoint, intrinsics, statistics and refused data_args."""

import io
import itertools
import json
import shutil
import types

import numpy as np
import pyarrow as pa
import pytest
import torch
from PIL import Image
from scipy.stats import chisquare

from shards.manifest import ManifestError
from shards.schema import shard_name, shard_schema, write_table
from shards.spatialvla import SpatialVLADataset, build_datasets
from shards.standin_processor import StandInProcessor, action_tokens
from storage.files import sha256_file
from storage.jsonio import sha256_of

SIZE = 16  # exported image side
PIXELS = 32  # the processor's image side (theirs: 224, kept by one test; small elsewhere, for speed)
DATASETS = {  # name: (version, weight, dataset tag in action dim 4, episode lengths, intrinsics at SIZE)
    "alpha": ("1.0.0", 1.0, 0.5, [6, 4, 7, 5], (20.0, 21.0, 7.5, 7.25)),
    "beta": ("0.1.0", 0.5, -0.5, [5, 8, 3, 9, 4], (12.0, 13.0, 8.0, 7.0)),
}
UNLABELED = ("alpha", 1)  # every instruction empty: skipped
PARTLY = ("alpha", 2)  # step 0 without an instruction: kept
STILL = ("beta", 3, [0, 1, 2, 6, 7, 8])  # steps beta's sample filter marks (sampled == False)


def color(name, episode, step):
    return [(30 * step) % 250, 40 * episode + 20, 60 if name == "alpha" else 190]


def action(name, episode, step):
    """Dims 0-1 identify the row exactly in float32, dim 4 the dataset; the gripper alternates."""
    return [episode / 16, step / 16, 0.25, -0.25, DATASETS[name][2], 0.0, float(step % 2)]


def instruction(name, episode, step):
    if (name, episode) == UNLABELED or ((name, episode) == PARTLY and step == 0):
        return ""
    return f"Pick Up {name} {episode}"


def moves(name, episode, step):
    return (name, episode) != STILL[:2] or step not in STILL[2]


def jpeg(rgb):
    buf = io.BytesIO()
    Image.fromarray(np.full((SIZE, SIZE, 3), rgb, np.uint8)).save(buf, format="JPEG", quality=100)
    return buf.getvalue()


def build(out, names=tuple(DATASETS), mixture="test_mix"):
    manifest = {"format_version": 1, "mixture": mixture, "datasets": {}, "inputs": {}, "weights": {}}
    stats = {}
    for name in names:
        version, weight, _, lengths, (fx, fy, cx, cy) = DATASETS[name]
        schema = shard_schema(with_sampled=name == STILL[0])
        rows = {k: [] for k in schema.names}
        for e, n in enumerate(lengths):
            for s in range(n):
                for k, v in [
                    ("dataset", name),
                    ("episode_id", f"{name}#{e}"),
                    ("step", s),
                    ("is_first", s == 0),
                    ("is_last", s == n - 1),
                    ("language_instruction", instruction(name, e, s)),
                    ("image", jpeg(color(name, e, s))),
                    ("action", action(name, e, s)),
                    ("raw_action", action(name, e, s)),
                    ("action_tokens", [e, s, 8192]),
                    ("sampled", moves(name, e, s)),
                ]:
                    if k in rows:
                        rows[k].append(v)
        path = out / "shards" / name / shard_name("train", 0, 1)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            write_table(f, pa.Table.from_pydict(rows, schema=schema), rows_per_batch=8)
        manifest["datasets"][name] = {
            "num_transitions": sum(lengths),
            "num_trajectories": len(lengths),
            "intrinsics": {"fx": fx, "fy": fy, "cx": cx, "cy": cy, "width": SIZE, "height": SIZE, "source": "test"},
            "shards": [
                {
                    "path": str(path.relative_to(out)),
                    "num_rows": sum(lengths),
                    "num_episodes": len(lengths),
                    "sha256": sha256_file(str(path)),
                    "bytes": path.stat().st_size,
                }
            ],
        }
        manifest["inputs"][name] = {"version": version, "path": f"/data/{name}/{version}"}
        manifest["weights"][name] = weight
        acts = np.array(rows["action"])
        stats[name] = {
            "action": {
                "mean": acts.mean(0).tolist(),
                "std": acts.std(0).tolist(),
                "max": acts.max(0).tolist(),
                "min": acts.min(0).tolist(),
                "q01": np.quantile(acts, 0.01, 0).tolist(),
                "q99": np.quantile(acts, 0.99, 0).tolist(),
                "mask": [True] * 6 + [False],
            },
            "num_transitions": sum(lengths),
            "num_trajectories": len(lengths),
        }
    manifest["statistics"] = "dataset_statistics.json"
    manifest["statistics_sha256"] = sha256_of(stats)
    (out / "dataset_statistics.json").write_text(json.dumps(stats))
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return build(tmp_path_factory.mktemp("export"))


def data_args(export, **changes):
    fields = dict(
        data_root_dir=str(export),
        data_mix="test_mix",
        max_seq_length=2048,
        shuffle_buffer_size=16,
        tsfm_thread_muti=1,
        read_thread_muti=1,
        obs_backward_steps=0,
        obs_backward_delta=1,
        action_forward_steps=3,
        fix_raw_length=None,
        use_raw_dataloader=True,
    )
    return types.SimpleNamespace(**{**fields, **changes})


def dataset(export, tmp_path, processor=True, image_size=PIXELS, **kwargs):
    options = dict(export=str(export), output_dir=str(tmp_path / "run"), data_mix="test_mix", shuffle_buffer_size=16)
    options["action_forward_steps"] = kwargs.pop("action_forward_steps", 3)
    ds = SpatialVLADataset(**{**options, **kwargs}, image_size=image_size)
    if processor:
        ds.vla_processor = StandInProcessor(image_seq_length=8, image_size=image_size)
    return ds


def row_of(item):
    """(dataset, episode, step) of an item, from its first action."""
    a = item["actions"][0].numpy()
    return ("alpha" if a[4] > 0 else "beta"), int(round(a[0] * 16)), int(round(a[1] * 16))


def take(ds, n):
    return list(itertools.islice(iter(ds), n))


def drawable(forward=3):
    """Every (dataset, episode, step) a trainer may see, by hand: labeled episodes, and steps whose action
    chunk (forward steps ahead, within the episode) holds a step that moves."""
    return {
        (n, e, s)
        for n, v in DATASETS.items()
        for e, length in enumerate(v[3])
        for s in range(length)
        if (n, e) != UNLABELED and any(moves(n, e, t) for t in range(s, min(s + forward + 1, length)))
    }


def test_items_are_their_trainers_items(export, tmp_path):
    ds = dataset(export, tmp_path, image_size=224)
    for item in take(ds, 40):
        assert set(item) == {
            "input_ids",
            "labels",
            "token_type_ids",
            "attention_mask",
            "pixel_values",
            "intrinsic",
            "actions",
        }
        n = item["input_ids"].shape[0]
        for key in ("input_ids", "labels", "token_type_ids", "attention_mask"):
            assert item[key].shape == (n,) and item[key].dtype == torch.long, key
        assert item["pixel_values"].shape == (1, 3, 224, 224) and item["pixel_values"].dtype == torch.float32
        assert 0 <= item["pixel_values"].min() and item["pixel_values"].max() <= 1
        assert item["actions"].shape == (4, 7) and item["actions"].dtype == torch.float32
        assert item["intrinsic"].shape == (3, 3) and item["intrinsic"].dtype == torch.float32
        suffix = item["token_type_ids"] == 1
        assert torch.equal(item["labels"][suffix], item["input_ids"][suffix])
        assert bool((item["labels"][~suffix] == -100).all())
        expected = action_tokens(item["actions"].numpy()).reshape(-1).tolist() + [1]  # eos
        assert item["input_ids"][suffix].tolist() == expected
        name, episode, step = row_of(item)
        prompt = instruction(name, episode, step).lower().encode()
        assert bytes(t - 16 for t in item["input_ids"][~suffix][9:-1].tolist()) == prompt  # 8 image tokens, bos


def shard_rows(export, name):
    table = pa.ipc.open_file(str(export / "shards" / name / shard_name("train", 0, 1))).read_all()
    return table.column("episode_id").to_pylist(), np.array(table.column("action").to_pylist(), np.float32)


@pytest.mark.parametrize("forward", [0, 3, 6])
def test_action_chunk_is_the_shard_rows_padded_like_the_public_pipeline(export, tmp_path, forward):
    ds = dataset(export, tmp_path, action_forward_steps=forward, augment=False)
    rows = {n: shard_rows(export, n) for n in DATASETS}
    padded = 0
    for item in take(ds, 60):
        name, episode, step = row_of(item)
        ids, actions = rows[name]
        episode_rows = np.flatnonzero(np.array(ids) == f"{name}#{episode}")
        expected = []
        for k in range(forward + 1):
            if step + k < len(episode_rows):
                expected.append(actions[episode_rows[step + k]])
            else:  # past the end: relative dims 0, the absolute gripper repeated
                last = actions[episode_rows[-1]]
                expected.append(np.r_[np.zeros(6, np.float32), last[6:]])
                padded += 1
        np.testing.assert_array_equal(item["actions"].numpy(), np.array(expected))
    assert padded > 0 or forward == 0


def test_observation_window_takes_earlier_frames_of_the_episode(export, tmp_path):
    ds = dataset(export, tmp_path, obs_backward_steps=2, obs_backward_delta=2, augment=False)
    for item in take(ds, 40):
        name, episode, step = row_of(item)
        assert item["pixel_values"].shape == (3, 3, PIXELS, PIXELS)
        for frame, s in zip(item["pixel_values"], [max(step - 4, 0), max(step - 2, 0), step]):
            mean = frame.mean(dim=(1, 2)).numpy() * 255
            assert np.abs(mean - color(name, episode, s)).max() < 4, (name, episode, step, s)


def test_one_augmentation_per_window_and_per_seed(export, tmp_path):
    first = take(dataset(export, tmp_path, obs_backward_steps=2, obs_backward_delta=1), 30)
    again = take(dataset(export, tmp_path, obs_backward_steps=2, obs_backward_delta=1), 30)
    for a, b in zip(first, again):
        assert torch.equal(a["pixel_values"], b["pixel_values"])  # a pure function of (seed, rank, worker, sample)
    at_start = [x for x in first if row_of(x)[2] == 0]
    assert at_start
    for item in at_start:  # the window repeats the first frame: one draw for the window, identical frames
        assert torch.equal(item["pixel_values"][0], item["pixel_values"][2])
    plain = take(dataset(export, tmp_path, obs_backward_steps=2, obs_backward_delta=1, augment=False), 30)
    assert all(row_of(a) == row_of(b) for a, b in zip(first, plain))
    assert not any(torch.equal(a["pixel_values"], b["pixel_values"]) for a, b in zip(first, plain))
    other_rank = take(dataset(export, tmp_path, obs_backward_steps=2, rank=1, world_size=2), 5)
    other_seed = take(dataset(export, tmp_path, obs_backward_steps=2, seed=1), 5)
    for a, b, c in zip(first, other_rank, other_seed):
        assert not torch.equal(a["pixel_values"], b["pixel_values"])
        assert not torch.equal(a["pixel_values"], c["pixel_values"])


def test_unlabeled_episodes_and_filtered_steps_are_skipped_and_weights_kept(export, tmp_path):
    ds = dataset(export, tmp_path, augment=False, fix_raw_length=1500)
    seen = [row_of(item) for item in ds]
    assert len(seen) == 1500
    assert set(seen) == drawable()  # every drawable step, nothing else
    assert (*PARTLY, 0) in seen  # an empty instruction inside a labeled episode is kept
    assert (*STILL[:2], 8) not in seen and (*STILL[:2], 5) in seen and (*STILL[:2], 0) in seen  # 0: chunk 0..3 moves
    raw = {n: DATASETS[n][1] * sum(DATASETS[n][3]) for n in DATASETS}  # the exported balance: weight x transitions
    counts = [sum(n == name for n, _, _ in seen) for name in DATASETS]
    expected = [raw[n] / sum(raw.values()) * len(seen) for n in DATASETS]
    assert chisquare(counts, expected).pvalue > 0.001, (counts, expected)


def their_length(weights, transitions, world_size):
    """SpatialVLA's: int(max over weight-1.0 datasets of size / balanced weight) x datasets // world size."""
    balanced = {n: weights[n] * transitions[n] for n in weights}
    total = sum(balanced.values())
    primary = [n for n in weights if weights[n] == 1.0]
    return int(max(transitions[n] / (balanced[n] / total) for n in primary)) * len(weights) // world_size


def test_len_is_their_formula_and_what_a_rank_yields(export, tmp_path):
    weights = {n: v[1] for n, v in DATASETS.items()}
    transitions = {n: sum(v[3]) for n, v in DATASETS.items()}
    for world in (1, 3):
        ds = dataset(export, tmp_path, rank=world - 1, world_size=world, augment=False)
        assert len(ds) == their_length(weights, transitions, world)
        loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
        assert sum(1 for _ in loader) == len(ds)
    assert len(dataset(export, tmp_path, fix_raw_length=77)) == 77


def test_without_the_raw_dataloader_every_rank_presents_the_whole_stream(export, tmp_path):
    """use_raw_dataloader=False: accelerate's loader reads rank 0's dataset and dispatches its batches, so
    len() is the whole stream's (theirs) and no rank may drop the parts of the others."""
    weights = {n: v[1] for n, v in DATASETS.items()}
    transitions = {n: sum(v[3]) for n, v in DATASETS.items()}
    options = dict(world_size=3, use_raw_dataloader=False, augment=False)
    assert len(dataset(export, tmp_path, rank=1, **options)) == their_length(weights, transitions, 1)
    ranks = [dataset(export, tmp_path, rank=r, fix_raw_length=300, **options) for r in range(3)]
    streams = [[row_of(x) for x in d] for d in ranks]
    assert streams[0] == streams[1] == streams[2]
    assert set(streams[0]) == drawable()  # the whole data, not a third of it


def test_ranks_and_workers_never_share_a_step(export, tmp_path):
    slots = []
    for rank in range(2):
        ds = dataset(export, tmp_path, rank=rank, world_size=2, augment=False, fix_raw_length=240)
        loader = torch.utils.data.DataLoader(ds, batch_size=5, num_workers=2, collate_fn=list)
        by_worker = [[], []]
        for i, batch in enumerate(loader):  # batches come from the workers in turn
            by_worker[i % 2] += [row_of(item) for item in batch]
        slots += [set(rows) for rows in by_worker]
    assert all(slots)
    for a, b in itertools.combinations(slots, 2):
        assert not a & b
    assert set().union(*slots) == drawable()  # 60 samples per slot cover each slot's part


def epochs(ds, batch_size, count, workers=2):
    """Batches a trainer takes per epoch: len(loader) of them from a fresh loader iterator each epoch."""
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, num_workers=workers, collate_fn=list)
    return [list(itertools.islice(iter(loader), len(loader))) for _ in range(count)]


def same(a, b):
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("global_step, accumulation", [(5, 1), (9, 1), (12, 1), (3, 2), (5, 2)])
def test_resume_from_a_transformers_checkpoint_gives_the_same_next_samples(export, tmp_path, global_step, accumulation):
    """A run of 2 epochs of ceil(20 / 3) = 7 batches from 2 DataLoader workers (taken in turn), stopped
    after `global_step` optimizer steps of `accumulation` batches (one more at each epoch's end: 7 or 4
    steps per epoch): its transformers trainer_state.json resumes the data exactly where the uninterrupted
    run goes on, augmentation included, also mid-round (an odd batch count: worker 1's turn)."""
    transformers = pytest.importorskip("transformers")
    batch = 3
    whole = epochs(dataset(export, tmp_path, fix_raw_length=20), batch, 2)
    assert [len(e) for e in whole] == [7, 7]
    epoch, step = divmod(global_step, -(-7 // accumulation))
    taken = min(step * accumulation, 7)
    checkpoint = tmp_path / f"checkpoint-{global_step}"
    checkpoint.mkdir()
    state = transformers.TrainerState(global_step=global_step, train_batch_size=batch)
    state.save_to_json(str(checkpoint / "trainer_state.json"))
    resumed = dataset(export, tmp_path, fix_raw_length=20)
    resumed.resume_from_checkpoint(str(checkpoint), accumulation)
    tail = epochs(resumed, batch, 2 - epoch)
    expected = [whole[epoch][taken:], *whole[epoch + 1 :]]
    assert [len(e) for e in tail] == [len(e) for e in expected]
    for got, want in zip(itertools.chain(*tail), itertools.chain(*expected)):
        assert len(got) == len(want) and all(same(a, b) for a, b in zip(got, want))
    fresh = dataset(export, tmp_path, fix_raw_length=20)
    fresh.resume_from_checkpoint(None)  # no checkpoint: a fresh run
    assert all(same(a, b) for a, b in zip(epochs(fresh, batch, 1)[0][0], whole[0][0]))


def test_epochs_continue_the_stream(export, tmp_path):
    first, second = epochs(dataset(export, tmp_path, fix_raw_length=30, augment=False), 5, 2)
    rows = lambda e: [row_of(item) for batch in e for item in batch]
    assert len(rows(first)) == len(rows(second)) == 30 and rows(first) != rows(second)
    alone = take(dataset(export, tmp_path, fix_raw_length=30, augment=False), 30)
    assert [row_of(x) for x in alone] != rows(first)  # workers: each draws its own part


def test_intrinsics_per_dataset_reach_the_processor(export, tmp_path):
    ds = dataset(export, tmp_path, augment=False)
    processor = ds.vla_processor
    for item in take(ds, 20):
        name = row_of(item)[0]
        fx, fy, cx, cy = DATASETS[name][4]
        expected = torch.tensor(
            [[fx * PIXELS / SIZE, 0, cx * PIXELS / SIZE], [0, fy * PIXELS / SIZE, cy * PIXELS / SIZE], [0, 0, 1]]
        )
        assert torch.allclose(item["intrinsic"], expected)
        assert not torch.allclose(item["intrinsic"], processor.dataset_intrinsics["default"])
    key = f"alpha/{DATASETS['alpha'][0]}"
    assert processor.intrinsic_config[key]["width"] == SIZE  # saved with the processor, for inference


def test_their_processor_scales_the_cameras_own_intrinsics(bridge_export, tmp_path, registry):
    """What reaches SpatialVLA's processor is the camera's own K at its own size; their rule (K[:2] *= [w/W,
    h/H]) then gives the K their checkpoints were trained with, not the manifest's half-pixel K."""
    source = registry.datasets["bridge_orig"].intrinsics
    assert (source.width, source.height) == (640, 480)
    manifest = json.loads((bridge_export / "manifest.json").read_text())
    intr = manifest["datasets"]["bridge_orig"]["intrinsics"]
    assert intr["native"] == {k: getattr(source, k) for k in ("fx", "fy", "cx", "cy", "width", "height")}
    ds = SpatialVLADataset(str(bridge_export), str(tmp_path / "run"), "bridge", shuffle_buffer_size=8, augment=False)
    entry = ds.intrinsic_config["bridge_orig/1.0.0"]
    assert (entry["width"], entry["height"]) == (640, 480)
    by_hand = np.array(  # the registry's numbers, scaled per axis to 224 x 224
        [
            [source.fx * 224 / 640, 0, source.cx * 224 / 640],
            [0, source.fy * 224 / 480, source.cy * 224 / 480],
            [0, 0, 1],
        ]
    )
    their_rule = np.array(entry["intrinsic"], np.float64)
    their_rule[:2] *= np.array([224 / entry["width"], 224 / entry["height"]])[:, None]
    np.testing.assert_allclose(their_rule, by_hand, rtol=1e-12)
    assert by_hand[0, 2] == pytest.approx(111.825, abs=1e-3) and by_hand[1, 2] == pytest.approx(111.788, abs=1e-3)
    assert intr["cx"] == pytest.approx(111.500, abs=1e-3)  # the manifest's geometric K stays for other consumers
    ds.vla_processor = StandInProcessor(image_seq_length=4, image_size=224)
    np.testing.assert_allclose(ds.vla_processor.dataset_intrinsics["bridge_orig/1.0.0"].numpy(), by_hand, rtol=1e-6)
    for item in take(ds, 3):
        np.testing.assert_allclose(item["intrinsic"].numpy(), by_hand, rtol=1e-6)


def test_statistics_in_their_layout_written_once(export, tmp_path):
    run = tmp_path / "run"
    ds = dataset(export, tmp_path)
    stats = json.loads((export / "dataset_statistics.json").read_text())
    assert set(ds.ds_stats_pc) == {f"{n}/{v[0]}" for n, v in DATASETS.items()}
    for name, (version, *_) in DATASETS.items():
        ours = ds.ds_stats_pc[f"{name}/{version}"]
        assert list(ours) == ["action", "proprio", "num_transitions", "num_trajectories"]
        assert ours["action"] == stats[name]["action"]
        assert ours["num_transitions"] == stats[name]["num_transitions"]
        assert ours["proprio"] == {k: [0.0] * 7 for k in ("mean", "std", "max", "min", "q01", "q99")}  # theirs
    assert json.loads((run / "ds_stats.json").read_text()) == ds.ds_stats_pc
    (run / "ds_stats.json").write_text("{}")
    dataset(export, tmp_path)
    assert (run / "ds_stats.json").read_text() == "{}"  # theirs: only if absent


def test_build_datasets_honours_or_refuses_every_field(export, tmp_path):
    train, evaluation = build_datasets(data_args(export), str(tmp_path / "run"))
    assert evaluation is None and train.vla_processor is None and train.use_raw_dataloader
    assert train.mixture.buffer == 16 and train.mixture.chunk == 4 and train.max_length == 2048
    with pytest.raises(RuntimeError, match="set train_dataset.vla_processor"):
        next(iter(train))
    windowed, _ = build_datasets(
        data_args(export, obs_backward_steps=2, obs_backward_delta=3, max_seq_length=99, fix_raw_length=5),
        str(tmp_path / "run"),
    )
    assert (windowed.mixture.obs_window, windowed.mixture.obs_delta, windowed.max_length, len(windowed)) == (
        3,
        3,
        99,
        5,
    )
    single = build(tmp_path / "single", names=("beta",), mixture="beta_only")
    for mix in ("beta_only", "beta", "beta/0.1.0"):
        build_datasets(data_args(single, data_mix=mix), str(tmp_path / "run"))
    refusals = [
        (dict(data_mix="bridge"), r"data_args.data_mix='bridge' does not match the export at .*: it was exported"),
        (dict(tsfm_thread_muti=4), r"data_args.tsfm_thread_muti=4: tf.data threads: none here"),
        (dict(read_thread_muti=2), r"data_args.read_thread_muti=2: tf.data threads"),
        (dict(obs_backward_delta=0), r"data_args.obs_backward_delta=0: must be an integer >= 1"),
        (dict(action_forward_steps=-1), r"data_args.action_forward_steps=-1: must be an integer >= 0"),
        (dict(use_raw_dataloader="yes"), r"data_args.use_raw_dataloader='yes': must be True or False"),
        (dict(image_aug=True), r"data_args.image_aug: not a field of SpatialVLA's DataTrainingArguments"),
        (dict(data_root_dir=str(tmp_path / "nowhere")), r"data_args.data_root_dir: .*no manifest"),
    ]
    for changes, message in refusals:
        with pytest.raises(ValueError, match=message):
            build_datasets(data_args(export, **changes), str(tmp_path / "run"))
    build_datasets(data_args(export, data_root_dir=str(export / "manifest.json")), str(tmp_path / "run"))
    pretrain = data_args(export, intrinsic_config_path="scripts/intrinsics.json", normalized_statistic_path="gs.json")
    build_datasets(pretrain, str(tmp_path / "run"))  # spatialvla_pretrain.py's two more fields: read by the script


def test_changed_statistics_are_refused(export, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(export, copy)
    stats = json.loads((copy / "dataset_statistics.json").read_text())
    stats["alpha"]["num_transitions"] += 1
    (copy / "dataset_statistics.json").write_text(json.dumps(stats))
    with pytest.raises(ManifestError, match=r"dataset_statistics.json: changed since the export"):
        dataset(copy, tmp_path)


def test_readme_snippets_run_as_written(export, tmp_path):
    from tests.shards.readme import readme_blocks

    blocks = [code for lang, code in readme_blocks("Train with SpatialVLA") if lang == "python"]
    namespace = {}
    exec(blocks[0], namespace)  # the changed import
    assert namespace["build_datasets"] is build_datasets
    train_dataset, _ = namespace["build_datasets"](data_args(export), str(tmp_path / "run"))
    train_dataset.vla_processor = StandInProcessor(image_seq_length=4, image_size=PIXELS)
    training_args = types.SimpleNamespace(gradient_accumulation_steps=1)
    resume = next(code for code in blocks if "resume_from_checkpoint" in code)
    exec(resume, {"train_dataset": train_dataset, "checkpoint": None, "training_args": training_args})
    assert len(take(train_dataset, 3)) == 3
