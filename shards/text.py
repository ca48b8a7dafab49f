"""Text tokens for the exported steps, the way SpatialVLA feeds them: the instruction's input_ids, and
each action token t as the added token <ACTION{t:05d}> of the same tokenizer."""

from __future__ import annotations

from manifests.extras import install_hint, missing


def action_token_names(vocab_size: int) -> list[str]:
    return [f"<ACTION{t:05d}>" for t in range(vocab_size)]


def load_with_action_tokens(tokenizer_dir: str, vocab_size: int):
    """A Hugging Face tokenizer from a local directory, with the action tokens added (in order, so that
    action token t has id first + t). Returns (tokenizer, first)."""
    if missing("text"):
        raise ValueError(f"--text-tokenizer '{tokenizer_dir}': transformers is not installed ({install_hint('text')})")
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    except (OSError, ValueError) as e:
        raise ValueError(
            f"--text-tokenizer '{tokenizer_dir}': not a tokenizer directory ({str(e).splitlines()[0]})"
        ) from None
    names = action_token_names(vocab_size)
    tok.add_tokens(names, special_tokens=True)
    ids = tok.convert_tokens_to_ids(names)
    first = ids[0]
    if ids != list(range(first, first + vocab_size)):
        raise ValueError(f"--text-tokenizer '{tokenizer_dir}': some <ACTION...> tokens already exist with other ids")
    return tok, first
