"""--text-tokenizer with a tiny tokenizer the test trains offline: input_ids and <ACTION.....> tokens."""

import json

import pyarrow as pa
import pytest

from pipeline.run import main


def train_tiny_tokenizer(path, texts):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tk.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]"]))
    PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]").save_pretrained(path)
    return path


@pytest.mark.slow
def test_text_tokens(bridge_root, tmp_path):
    from transformers import AutoTokenizer

    from manifests.registry import load_registry
    from sources.rlds import open_dataset

    cfg = load_registry().datasets["bridge_orig"]
    texts = sorted(
        {
            e.steps["language_instruction"][0].decode()
            for e in open_dataset(str(bridge_root), cfg).episodes("train", keys=["language_instruction"])
        }
    )
    tok_dir = train_tiny_tokenizer(tmp_path / "tok", texts)
    base_vocab = len(AutoTokenizer.from_pretrained(tok_dir))
    out = tmp_path / "out"
    assert (
        main(
            [
                "--mixture",
                "bridge",
                "--data-dir",
                str(bridge_root),
                "--out",
                str(out),
                "--no-depth",
                "--image-size",
                "32",
                "--text-tokenizer",
                str(tok_dir),
            ]
        )
        == 0
    )
    manifest = json.loads((out / "manifest.json").read_text())
    info = manifest["text_tokenizer"]
    assert info["action_token_first_id"] == base_vocab and info["vocab_size"] == base_vocab + 8194
    extended = AutoTokenizer.from_pretrained(out / "tokenizer")
    assert extended.convert_tokens_to_ids("<ACTION00000>") == base_vocab
    assert extended.convert_tokens_to_ids("<ACTION08193>") == base_vocab + 8193
    with pa.memory_map(str(out / manifest["datasets"]["bridge_orig"]["shards"][0]["path"])) as src:
        table = pa.ipc.open_file(src).read_all()
    for row in table.slice(0, 40).to_pylist():
        assert extended.decode(row["input_ids"]) == row["language_instruction"]
        assert row["action_input_ids"] == [base_vocab + t for t in row["action_tokens"]]
        names = extended.convert_ids_to_tokens(row["action_input_ids"])
        assert names == [f"<ACTION{t:05d}>" for t in row["action_tokens"]]
    assert "input_ids" in manifest["columns"]
