"""shards.openvla against OpenVLA's documented layout and formulas, re-derived here (their code is not on
PyPI: prismatic/vla/datasets/datasets.py, prismatic/vla/action_tokenizer.py, prismatic/util/data_utils.py,
prismatic/vla/datasets/rlds/dataset.py): rlds_batch as their RLDSBatchTransform reads it, their
ActionTokenizer's bins on our actions with a tiny word-level tokenizer built offline standing in for
Llama's, their padded collator's batch; len(), dataset_statistics, data_mix, resize_resolution, image_aug,
train=False, refusals. On the hand-built export of test_spatialvla and on the real Bridge slice."""

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
from shards.openvla import RLDSDataset
from shards.schema import shard_name
from tests.shards.test_spatialvla import DATASETS, UNLABELED, build

IGNORE_INDEX = -100
BINS = 256  # their ActionTokenizer's default


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return build(tmp_path_factory.mktemp("export"))


def rows(export):
    """(dataset, episode, step) -> the shard row's columns, read with pyarrow."""
    out = {}
    for name in DATASETS:
        table = pa.ipc.open_file(str(export / "shards" / name / shard_name("train", 0, 1))).read_all()
        for r in table.to_pylist():
            out[(name, int(r["episode_id"].split("#")[1]), r["step"])] = r
    return out


def key_of(batch):
    """(dataset, episode, step) of an rlds_batch: dims 0-1 of the action identify the row."""
    a = batch["action"][0]
    return batch["dataset_name"].decode(), int(round(a[0] * 16)), int(round(a[1] * 16))


def identity(item):
    return item


def dataset(export, transform=lambda b: b, resize=(16, 16), **kwargs):
    return RLDSDataset(
        export, kwargs.pop("data_mix", "test_mix"), transform, resize, **{"shuffle_buffer_size": 16, **kwargs}
    )


def test_rlds_batch_is_their_layout_and_the_shard_rows(export):
    table = rows(export)
    batches = list(itertools.islice(iter(dataset(export)), 60))
    for b in batches:
        assert set(b) == {"dataset_name", "action", "observation", "task", "absolute_action_mask"}
        assert isinstance(b["dataset_name"], bytes) and isinstance(b["task"]["language_instruction"], bytes)
        assert b["action"].shape == (1, 7) and b["action"].dtype == np.float32
        image = b["observation"]["image_primary"]
        assert image.shape == (1, 16, 16, 3) and image.dtype == np.uint8
        assert b["observation"]["timestep"].tolist() == [key_of(b)[2]]
        row = table[key_of(b)]
        np.testing.assert_array_equal(b["action"][0], np.array(row["action"], np.float32))  # their bounds_q99 action
        assert b["task"]["language_instruction"] == row["language_instruction"].encode()  # as stored: theirs lowers it
        decoded = np.asarray(Image.open(io.BytesIO(row["image"])).convert("RGB"))
        np.testing.assert_array_equal(image[0], decoded)  # the exported frame at its own size
        assert b["absolute_action_mask"].tolist() == [False] * 6 + [True]
    assert not {(n, e) for n, e, _ in map(key_of, batches)} & {UNLABELED}  # trajectories without instruction skipped


def test_resize_resolution_is_honoured_with_lanczos(export):
    table = rows(export)
    for b in itertools.islice(iter(dataset(export, resize=(24, 40))), 20):
        image = b["observation"]["image_primary"]
        assert image.shape == (1, 24, 40, 3)
        frame = Image.open(io.BytesIO(table[key_of(b)]["image"])).convert("RGB")
        np.testing.assert_array_equal(image[0], np.asarray(frame.resize((40, 24), Image.Resampling.LANCZOS)))


def their_length(weights, transitions):
    """make_interleaved_dataset's: int(max over weight-1.0 datasets of size / balanced weight)."""
    balanced = {n: weights[n] * transitions[n] for n in weights}
    total = sum(balanced.values())
    return int(max(transitions[n] / (balanced[n] / total) for n in weights if weights[n] == 1.0))


def test_len_statistics_and_weights_are_theirs(export):
    weights = {n: v[1] for n, v in DATASETS.items()}
    transitions = {n: sum(v[3]) for n, v in DATASETS.items()}
    ds = dataset(export)
    assert len(ds) == ds.dataset_length == their_length(weights, transitions)
    stats = json.loads((export / "dataset_statistics.json").read_text())
    assert set(ds.dataset_statistics) == set(DATASETS)
    for name, entry in ds.dataset_statistics.items():
        assert set(entry) == {"action", "proprio", "num_transitions", "num_trajectories"}
        for key in ("mean", "std", "max", "min", "q01", "q99", "mask"):
            assert isinstance(entry["action"][key], np.ndarray)
            assert entry["action"][key].tolist() == stats[name]["action"][key]
        assert all(v.tolist() == [0.0] * 7 for v in entry["proprio"].values())  # theirs loads no proprio
        assert entry["num_transitions"].item() == sum(DATASETS[name][3])
        assert entry["num_trajectories"].item() == len(DATASETS[name][3])
    # what their save_dataset_statistics writes: arrays as lists, counts as ints
    saved = json.loads(
        json.dumps(
            {
                n: {
                    **{k: {s: v.tolist() for s, v in e[k].items()} for k in ("action", "proprio")},
                    **{k: e[k].item() for k in ("num_transitions", "num_trajectories")},
                }
                for n, e in ds.dataset_statistics.items()
            }
        )
    )
    assert saved["beta"]["action"]["q99"] == stats["beta"]["action"]["q99"]
    seen = [key_of(b)[0] for b in itertools.islice(iter(dataset(export)), 1500)]
    counts = [seen.count(n) for n in DATASETS]
    total = sum(weights[n] * transitions[n] for n in DATASETS)
    expected = [weights[n] * transitions[n] / total * len(seen) for n in DATASETS]
    assert chisquare(counts, expected).pvalue > 0.001, (counts, expected)


def test_one_dataset_of_the_export_as_data_mix(export):
    ds = dataset(export, data_mix="beta")
    assert len(ds) == sum(DATASETS["beta"][3]) and set(ds.dataset_statistics) == {"beta"}
    assert {key_of(b)[0] for b in itertools.islice(iter(ds), 200)} == {"beta"}


def test_image_aug_in_training_only(export):
    plain = list(itertools.islice(iter(dataset(export, seed=3)), 30))
    augmented = list(itertools.islice(iter(dataset(export, seed=3, image_aug=True)), 30))
    again = list(itertools.islice(iter(dataset(export, seed=3, image_aug=True)), 30))
    assert [key_of(b) for b in plain] == [key_of(b) for b in augmented]  # the same samples
    changed = 0
    for p, a, b in zip(plain, augmented, again):
        np.testing.assert_array_equal(a["observation"]["image_primary"], b["observation"]["image_primary"])
        assert a["observation"]["image_primary"].shape == p["observation"]["image_primary"].shape
        changed += not np.array_equal(a["observation"]["image_primary"], p["observation"]["image_primary"])
    assert changed >= 25
    val = dataset(export, seed=3, image_aug=True, train=False)
    for b in val:  # theirs augments only when train
        frame = rows(export)[key_of(b)]["image"]
        np.testing.assert_array_equal(b["observation"]["image_primary"][0], np.asarray(Image.open(io.BytesIO(frame))))


def test_validation_is_a_fixed_set_of_shuffle_buffer_size_samples(export):
    val = dataset(export, train=False, shuffle_buffer_size=12)
    first, second = [key_of(b) for b in val], [key_of(b) for b in val]
    assert len(first) == 12 and first == second
    loader = torch.utils.data.DataLoader(val, batch_size=None, num_workers=2, collate_fn=identity)
    by_workers = [key_of(b) for b in loader]
    assert len(by_workers) == 12 and by_workers == [key_of(b) for b in loader]  # shared by the workers, fixed


def test_refusals_in_one_line(export, tmp_path):
    cases = [
        (
            dict(data_mix="bridge"),
            ValueError,
            r"data_mix='bridge': neither the mixture of the export at .* \('test_mix'\) nor one of its datasets \['alpha', 'beta'\]",
        ),
        (dict(resize=224), ValueError, r"resize_resolution=224: must be \(height, width\), two positive integers"),
        (dict(resize=(224, 0)), ValueError, r"resize_resolution=\(224, 0\)"),
        (dict(transform=None), TypeError, r"batch_transform=None: must be callable"),
        (dict(shuffle_buffer_size=0), ValueError, r"shuffle_buffer_size=0: must be a positive integer"),
    ]
    for changes, error, message in cases:
        with pytest.raises(error, match=message):
            dataset(export, **changes)
    with pytest.raises(ManifestError, match=r"data_root_dir: .*no manifest"):
        dataset(tmp_path / "nowhere")


def test_other_normalizations_are_renormalized_from_raw_actions(export, tmp_path):
    """An export normalized 'normal' still gives their bounds_q99 action: from raw_action and q01/q99."""
    import shutil

    copy = tmp_path / "normal"
    shutil.copytree(export, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["normalization"] = "normal"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    stats = json.loads((copy / "dataset_statistics.json").read_text())
    table = rows(export)

    def by_hand(name, raw):
        q01, q99 = (np.array(stats[name]["action"][k]) for k in ("q01", "q99"))
        live = q99 > q01
        out = np.where(live, np.clip(2 * (raw - q01) / np.where(live, q99 - q01, 1) - 1, -1, 1), 0)
        out[6] = raw[6]  # the gripper: not normalized (their mask)
        return out

    for b in itertools.islice(iter(dataset(copy)), 30):
        name, step = b["dataset_name"].decode(), int(b["observation"]["timestep"][0])
        text = b["task"]["language_instruction"].decode()
        candidates = [
            by_hand(name, np.array(r["raw_action"], np.float64))
            for (n, _, s), r in table.items()
            if (n, s) == (name, step) and r["language_instruction"] == text
        ]
        assert any(np.allclose(b["action"][0], c, atol=1e-6) for c in candidates)
        assert b["action"][0][2] == 0.0  # constant in the export (0.25 raw): q01 == q99, no information


# ------------------------------------------------------------ their batch transform, tokenizer and collator


def tiny_llama_like_tokenizer():
    """A word-level tokenizer built offline: <s>, </s>, <unk>, <pad>, some words, and 256 action words last,
    so that the last 256 ids (what their ActionTokenizer writes over) decode and re-encode to themselves."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = ["<s>", "</s>", "<unk>", "<pad>", "In:", "What", "action", "should", "the", "robot", "take", "to", "Out:"]
    vocab = {w: i for i, w in enumerate(words + [f"<a{i}>" for i in range(BINS)])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )


class TheirBatchTransform:
    """RLDSBatchTransform, re-derived from their documented behaviour: action_tokenizer(action[0]) as the
    gpt turn of PurePromptBuilder's "In: What action should the robot take to {lang}?\\nOut: {actions}</s>",
    tokenized with special tokens, labels IGNORE_INDEX but on the action tokens and the stop token."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.bins = np.linspace(-1, 1, BINS)
        self.actions = []  # what it was given, for the test

    def action_string(self, action):
        ids = self.tokenizer.vocab_size - np.digitize(np.clip(action, -1.0, 1.0), self.bins)
        return self.tokenizer.decode(list(ids))

    def __call__(self, rlds_batch):
        action = rlds_batch["action"][0]
        self.actions.append(action)
        lang = rlds_batch["task"]["language_instruction"].decode().lower()
        prompt = f"In: What action should the robot take to {lang}?\nOut: {self.action_string(action)}</s>"
        input_ids = torch.tensor(self.tokenizer(prompt, add_special_tokens=True).input_ids)
        labels = input_ids.clone()
        labels[: -(len(action) + 1)] = IGNORE_INDEX
        image = Image.fromarray(rlds_batch["observation"]["image_primary"][0])
        pixel_values = torch.from_numpy(np.asarray(image, np.float32) / 255).permute(2, 0, 1)
        return dict(
            pixel_values=pixel_values, input_ids=input_ids, labels=labels, dataset_name=rlds_batch["dataset_name"]
        )


def their_collate(pad_token_id, model_max_length):
    """PaddedCollatorForActionPrediction: right padding, labels padded with IGNORE_INDEX, attention mask
    from the pad id, pixel values stacked, dataset names listed."""

    def collate(instances):
        input_ids = torch.nn.utils.rnn.pad_sequence([i["input_ids"] for i in instances], True, pad_token_id)
        labels = torch.nn.utils.rnn.pad_sequence([i["labels"] for i in instances], True, IGNORE_INDEX)
        input_ids, labels = input_ids[:, :model_max_length], labels[:, :model_max_length]
        return dict(
            pixel_values=torch.stack([i["pixel_values"] for i in instances]),
            input_ids=input_ids,
            attention_mask=input_ids.ne(pad_token_id),
            labels=labels,
            dataset_names=[i["dataset_name"] for i in instances],
        )

    return collate


def test_their_transform_tokenizer_and_collator_train_on_our_actions(bridge_export):
    """The real Bridge export through their batch transform and collator: every label is the action token
    of our normalized action (their bins), decodes back within a bin width, and the stop token follows."""
    tokenizer = tiny_llama_like_tokenizer()
    transform = TheirBatchTransform(tokenizer)
    ds = RLDSDataset(bridge_export, "bridge_orig", transform, (224, 224), shuffle_buffer_size=64, image_aug=True)
    assert len(ds) == 200  # one dataset: weight 1.0, its transitions
    loader = torch.utils.data.DataLoader(ds, batch_size=8, collate_fn=their_collate(tokenizer.pad_token_id, 2048))
    centers = (transform.bins[:-1] + transform.bins[1:]) / 2
    decoded = []
    for batch in itertools.islice(iter(loader), 4):
        assert batch["pixel_values"].shape == (8, 3, 224, 224)
        assert batch["dataset_names"] == [b"bridge_orig"] * 8
        for ids, labels, mask in zip(batch["input_ids"], batch["labels"], batch["attention_mask"]):
            kept = labels[labels != IGNORE_INDEX]
            assert len(kept) == 8 and kept[-1] == tokenizer.eos_token_id  # 7 action tokens, then the stop token
            assert bool((kept[:7] >= tokenizer.vocab_size - BINS).all())
            assert torch.equal(ids[mask][-8:], kept) and bool((ids[~mask] == tokenizer.pad_token_id).all())
            # their decode_token_ids_to_actions
            decoded.append(centers[np.clip(tokenizer.vocab_size - kept[:7].numpy() - 1, 0, len(centers) - 1)])
    actions = np.array(transform.actions[:32])
    assert np.abs(np.array(decoded) - actions).max() <= 2 / (BINS - 1) + 1e-6  # within one bin of our action
    assert np.abs(actions[:, :6]).max() <= 1 and set(np.unique(actions[:, 6])) <= {0.0, 1.0}


def test_readme_snippets_run_as_written(bridge_export, tmp_path):
    """The README's line and their finetune.py call, with stand-ins for their config, model and transform."""
    import types

    from tests.shards.readme import readme_blocks

    added, call = [code for lang, code in readme_blocks("Train with OpenVLA") if lang == "python"]
    namespace = {}
    exec(added, namespace)
    assert namespace["RLDSDataset"] is RLDSDataset

    def save_dataset_statistics(statistics, run_dir):  # theirs: arrays as lists, counts as ints, to JSON
        plain = {
            n: {
                k: (v.item() if not isinstance(v, dict) else {s: a.tolist() for s, a in v.items()})
                for k, v in e.items()
            }
            for n, e in statistics.items()
        }
        (run_dir / "dataset_statistics.json").write_text(json.dumps(plain))

    tokenizer = tiny_llama_like_tokenizer()
    namespace.update(
        cfg=types.SimpleNamespace(
            data_root_dir=bridge_export, dataset_name="bridge_orig", shuffle_buffer_size=64, image_aug=True
        ),
        batch_transform=TheirBatchTransform(tokenizer),
        vla=types.SimpleNamespace(module=types.SimpleNamespace(config=types.SimpleNamespace(image_sizes=[224, 224]))),
        save_dataset_statistics=save_dataset_statistics,
        run_dir=tmp_path,
    )
    exec(call, namespace)
    saved = json.loads((tmp_path / "dataset_statistics.json").read_text())
    assert saved["bridge_orig"]["num_transitions"] == 200 and len(namespace["vla_dataset"]) == 200
    item = next(iter(namespace["vla_dataset"]))
    assert item["pixel_values"].shape == (3, 224, 224) and int((item["labels"] != IGNORE_INDEX).sum()) == 8
