"""Tokenization as the contract states it: the model's tokenizer.json, special tokens added,
truncation to max_seq_length, right padding to the batch's longest row with the pad id."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from .config import ConfigError


@dataclass(frozen=True)
class TokenBatch:
    input_ids: np.ndarray  # int64 [batch, seq]
    attention_mask: np.ndarray  # int64 [batch, seq]
    truncated: tuple[bool, ...]  # per row: the text had more than max_seq_length tokens


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path} cannot be read as JSON: {e}") from None
    return value if isinstance(value, dict) else None


def resolve_pad(tokenizer: Tokenizer, hf_dir: Path) -> tuple[int, str]:
    """The pad (id, token): tokenizer.json's padding config, else tokenizer_config.json's pad_token,
    else config.json's pad_token_id. Models differ in which file carries it."""
    if tokenizer.padding is not None:
        return int(tokenizer.padding["pad_id"]), str(tokenizer.padding["pad_token"])
    tok_config = _read_json(hf_dir / "tokenizer_config.json") or {}
    pad = tok_config.get("pad_token")
    if isinstance(pad, dict):
        pad = pad.get("content")
    if isinstance(pad, str):
        pad_id = tokenizer.token_to_id(pad)
        if pad_id is not None:
            return pad_id, pad
    model_config = _read_json(hf_dir / "config.json") or {}
    pad_id = model_config.get("pad_token_id")
    if type(pad_id) is int:
        token = tokenizer.id_to_token(pad_id)
        if token is not None:
            return pad_id, token
    raise ConfigError(
        f"no pad token found for {hf_dir / 'tokenizer.json'}: expected tokenizer.json padding, "
        "tokenizer_config.json pad_token or config.json pad_token_id"
    )


class TextTokenizer:
    """Thread-safe: the tokenizers library's encode_batch_fast may run from several threads."""

    def __init__(self, hf_dir: Path, max_seq_length: int):
        path = hf_dir / "tokenizer.json"
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as e:  # the library raises a bare Exception for missing or bad files
            raise ConfigError(f"{path} cannot be loaded: {e}") from None
        pad_id, pad_token = resolve_pad(tokenizer, hf_dir)
        # Whatever truncation or padding the saved file carries, the contract's rule wins.
        tokenizer.enable_truncation(max_length=max_seq_length, stride=0, direction="right")
        tokenizer.enable_padding(direction="right", pad_id=pad_id, pad_token=pad_token)
        self._tokenizer = tokenizer
        self.pad_id = pad_id

    def encode(self, texts: list[str]) -> TokenBatch:
        # The fast variant skips character offsets, which nothing here reads.
        encodings = self._tokenizer.encode_batch_fast(texts, add_special_tokens=True)
        input_ids = np.array([e.ids for e in encodings], dtype=np.int64)
        attention_mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        # With truncation enabled, the cut-off tail of a long text lands in `overflowing`.
        truncated = tuple(len(e.overflowing) > 0 for e in encodings)
        return TokenBatch(input_ids, attention_mask, truncated)
