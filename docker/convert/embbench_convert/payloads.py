"""Request bodies for the load generator: texts of exactly L tokens with the model's tokenizer.

Each (L, B) gets `seq<L>_b<B>.json`, one body, and `seq<L>_b<B>.jsonl`, K distinct bodies one per
line (oha -Z sends a random line per request). No text appears twice in a .jsonl file, so a server
that caches answers by body or by text gains nothing from it.

For each of the model's prompts, `seq<L>_b<B>_<prompt>.json(l)` bodies carry "prompt_name" and texts
of exactly L tokens once the prompt is prepended (special tokens included), as the server counts them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from .corpus import count_tokens, load_sentences, text_with_tokens
from .errors import ConfigError
from .progress import log

DEFAULT_SEQ_LENS = (32, 128, 512)
DEFAULT_BATCH_SIZES = (1, 8)
DEFAULT_BODIES = 64
# The layout of payloads/: part of convert's inputs, so folders written by an older layout (no .jsonl
# files) are converted again rather than reported up to date.
PAYLOADS_FORMAT = 3
# Candidate texts begin at every corpus sentence, then 1, 2, ... tokens into it: this many rounds
# before giving up on finding enough distinct texts.
MAX_SKIP_ROUNDS = 32


def parse_int_list(value: str, flag: str) -> list[int]:
    try:
        items = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{flag} must be a comma-separated list of integers, found '{value}'") from None
    if not items or any(i <= 0 for i in items):
        raise ConfigError(f"{flag} must list positive integers, found '{value}'")
    return items


def parse_bodies(value: str, flag: str = "--bodies") -> int:
    try:
        k = int(value)
    except ValueError:
        raise ConfigError(f"{flag} must be a positive integer, found '{value}'") from None
    if k <= 0:
        raise ConfigError(f"{flag} must be a positive integer, found '{value}'")
    return k


def load_plain_tokenizer(tokenizer_json: Path):
    """tokenizer.json without truncation or padding, for counting tokens."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    tok.no_truncation()
    tok.no_padding()
    return tok


class PromptedTokenizer:
    """A tokenizer that counts a text's tokens with `prompt` prepended, as a server tokenizes a request
    with that prompt_name; without special tokens it encodes the text alone (for cutting it at tokens)."""

    def __init__(self, tok, prompt: str):
        self.tok = tok
        self.prompt = prompt

    def encode(self, text: str, add_special_tokens: bool = True):
        if add_special_tokens:
            return self.tok.encode(self.prompt + text, add_special_tokens=True)
        return self.tok.encode(text, add_special_tokens=False)


def distinct_texts(tok, sentences: list[str], n_tokens: int, count: int, first_start: int, label: str) -> list[str]:
    """`count` different texts of exactly `n_tokens` tokens, the first ones beginning at sentences
    first_start, first_start + 13, ... (a step prime to the corpus size, so the starts visit every
    sentence and consecutive texts differ in language).

    Candidates that repeat an earlier text are passed over; when every sentence has been a start,
    the next round begins one more token into each sentence. Raises ConfigError naming `label` when
    the corpus cannot give `count` different texts of this length.
    """
    texts: list[str] = []
    seen: set[str] = set()
    n = len(sentences)
    step = next(s for s in (13, 11, 7, 1) if math.gcd(s, n) == 1)
    for skip in range(MAX_SKIP_ROUNDS):
        before = len(texts)
        for i in range(n):
            try:
                text = text_with_tokens(tok, sentences, n_tokens, start=first_start + i * step, skip_tokens=skip)
            except ConfigError:
                continue  # no exact cut from this start: the next one will do
            if text in seen:
                continue
            seen.add(text)
            texts.append(text)
            if len(texts) == count:
                return texts
        if len(texts) == before:
            break  # a whole round found nothing new (e.g. only special tokens fit): more would not either
    raise ConfigError(
        f"{label}: the corpus gives only {len(texts)} different texts of exactly {n_tokens} tokens, "
        f"{count} are needed: lower --bodies or use a longer sequence length"
    )


def write_payloads(
    model_id: str,
    model_dir: Path,
    out_dir: Path,
    corpus_dir: Path,
    seq_lens: list[int],
    batch_sizes: list[int],
    max_seq_length: int,
    bodies: int = DEFAULT_BODIES,
    prompts: dict[str, str] | None = None,
) -> dict:
    """Writes seq<L>_b<B>.json, seq<L>_b<B>.jsonl, the same per prompt (seq<L>_b<B>_<prompt>.*) and
    index.json into `out_dir`; returns the index.

    Lengths over max_seq_length are capped to it (a server would truncate them anyway). The .jsonl
    file holds `bodies` compact bodies, one per line, and no text twice; the .json file is its first
    line, for verify and older readers. A corpus too small for that many different texts is a
    ConfigError naming the file.
    """
    tok = load_plain_tokenizer(model_dir / "pytorch" / "tokenizer.json")
    sentences = load_sentences(corpus_dir)
    lens = sorted({min(L, max_seq_length) for L in seq_lens})
    out_dir.mkdir(parents=True, exist_ok=True)
    entries, skipped = [], []
    variants: list[tuple[str | None, str]] = [(None, "")] + sorted((prompts or {}).items())
    for n, (prompt_name, prompt) in enumerate(variants):
        counter = tok if prompt_name is None else PromptedTokenizer(tok, prompt)
        overhead = count_tokens(counter, "")  # the prompt and the special tokens
        for L in lens:
            for B in sorted(set(batch_sizes)):
                stem = f"seq{L}_b{B}" + ("" if prompt_name is None else f"_{prompt_name}")
                if prompt_name is not None and overhead >= L:
                    # No text fits: a prompted payload of this length cannot exist (tiny-qwen3's query
                    # prompt is 48 tokens with its small vocabulary); the plain payloads always do.
                    skipped.append({"lines": f"{stem}.jsonl", "seq_len": L, "batch_size": B, "prompt_name": prompt_name,
                                    "reason": f"the prompt and special tokens alone are {overhead} tokens"})
                    log("payloads", f"no {stem}.jsonl: the '{prompt_name}' prompt alone is {overhead} tokens")
                    continue
                entries.append(_write_payload(counter, sentences, out_dir, stem, L, B, bodies, prompt_name,
                                              first_start=L * 7 + 5 * n))
    index = {
        "model": model_id,
        "format": PAYLOADS_FORMAT,
        "tokens_include_special": True,
        "requested_seq_lens": list(seq_lens),
        "batch_sizes": sorted(set(batch_sizes)),
        "bodies": bodies,
        "prompts": dict(sorted((prompts or {}).items())),
        "payloads": entries,
        "skipped": skipped,
    }
    (out_dir / "index.json").write_text(json.dumps(index, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return index


def _write_payload(tok, sentences: list[str], out_dir: Path, stem: str, L: int, B: int, bodies: int,
                   prompt_name: str | None, first_start: int) -> dict:
    """One payload: `bodies` bodies of B distinct texts of exactly L tokens (with the prompt, if any)."""
    texts = distinct_texts(tok, sentences, L, bodies * B, first_start=first_start, label=f"Payload {stem}.jsonl")
    counts = [count_tokens(tok, t) for t in texts]
    wrong = [(i, c) for i, c in enumerate(counts) if c != L]
    if wrong:  # text_with_tokens guarantees this; a cheap second check
        raise ConfigError(f"Payload {stem}.jsonl: texts with other token counts than {L}: {wrong[:5]}")
    extra = {} if prompt_name is None else {"prompt_name": prompt_name}
    rows = [{"inputs": texts[k * B:(k + 1) * B], **extra} for k in range(bodies)]
    lines = [json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in rows]
    if len(set(lines)) != len(lines) or len(set(texts)) != len(texts):
        raise ConfigError(f"Payload {stem}.jsonl: repeated bodies or texts")  # distinct_texts prevents it
    (out_dir / f"{stem}.json").write_text(json.dumps(rows[0], ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / f"{stem}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"file": f"{stem}.json", "lines": f"{stem}.jsonl", "seq_len": L, "batch_size": B,
            "prompt_name": prompt_name}
