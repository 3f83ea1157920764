"""Request bodies for the load generator: texts of exactly L tokens with the model's tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

from .corpus import count_tokens, load_sentences, text_with_tokens
from .errors import ConfigError

DEFAULT_SEQ_LENS = (32, 128, 512)
DEFAULT_BATCH_SIZES = (1, 8)


def parse_int_list(value: str, flag: str) -> list[int]:
    try:
        items = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{flag} must be a comma-separated list of integers, found '{value}'") from None
    if not items or any(i <= 0 for i in items):
        raise ConfigError(f"{flag} must list positive integers, found '{value}'")
    return items


def load_plain_tokenizer(tokenizer_json: Path):
    """tokenizer.json without truncation or padding, for counting tokens."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    tok.no_truncation()
    tok.no_padding()
    return tok


def write_payloads(
    model_id: str,
    model_dir: Path,
    out_dir: Path,
    corpus_dir: Path,
    seq_lens: list[int],
    batch_sizes: list[int],
    max_seq_length: int,
) -> dict:
    """Writes seq<L>_b<B>.json and index.json into `out_dir`; returns the index.

    Lengths over max_seq_length are capped to it (a server would truncate them anyway).
    Every row starts at a different corpus sentence, so rows differ (except at lengths of one or two
    real tokens, where two rows may begin with the same word).
    """
    tok = load_plain_tokenizer(model_dir / "pytorch" / "tokenizer.json")
    sentences = load_sentences(corpus_dir)
    lens = sorted({min(L, max_seq_length) for L in seq_lens})
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for L in lens:
        for B in sorted(set(batch_sizes)):
            texts = [text_with_tokens(tok, sentences, L, start=L * 7 + row * 13) for row in range(B)]
            counts = [count_tokens(tok, t) for t in texts]
            if counts != [L] * B:  # text_with_tokens guarantees this; a cheap second check
                raise ConfigError(f"Payload seq{L}_b{B}: token counts {counts}, expected {L}")
            name = f"seq{L}_b{B}.json"
            (out_dir / name).write_text(json.dumps({"inputs": texts}, ensure_ascii=False) + "\n", encoding="utf-8")
            entries.append({"file": name, "seq_len": L, "batch_size": B})
    index = {
        "model": model_id,
        "tokens_include_special": True,
        "requested_seq_lens": list(seq_lens),
        "batch_sizes": sorted(set(batch_sizes)),
        "payloads": entries,
    }
    (out_dir / "index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return index
