"""The project corpus (data/corpus/<lang>.txt) and texts built from it with exact token counts."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol

from .errors import ConfigError

# The repository root as seen from docker/convert/embbench_convert/corpus.py; the image mounts the
# repository at /work and sets EMBBENCH_CORPUS_DIR=/work/data/corpus instead.
DEFAULT_CORPUS_DIR = Path(__file__).resolve().parents[3] / "data" / "corpus"

# Parity batches of models with a longer context stop here: eager attention over 8192 tokens
# needs tens of GiB. Models up to this length are checked over their whole length.
PARITY_MAX_TOKENS = 1024


def corpus_files(corpus_dir: Path) -> list[Path]:
    files = sorted(corpus_dir.glob("*.txt"))
    if not files:
        raise ConfigError(f"Corpus folder '{corpus_dir}' has no <lang>.txt files")
    return files


def load_sentences(corpus_dir: Path) -> list[str]:
    """Every sentence, interleaved across languages (first of each language, then second, ...).

    Interleaving makes any run of consecutive sentences multilingual.
    """
    per_lang = []
    for f in corpus_files(corpus_dir):
        lines = [ln.strip() for ln in f.read_text(encoding="utf-8").splitlines()]
        per_lang.append([ln for ln in lines if ln])
    out = []
    for i in range(max(len(s) for s in per_lang)):
        out.extend(s[i] for s in per_lang if i < len(s))
    return out


def corpus_sha256(corpus_dir: Path) -> str:
    """One hash over the corpus files' names and bytes."""
    h = hashlib.sha256()
    for f in corpus_files(corpus_dir):
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


class Encoding(Protocol):
    ids: list[int]
    offsets: list[tuple[int, int]]


class TextTokenizer(Protocol):
    def encode(self, text: str, add_special_tokens: bool = True) -> Encoding: ...


def count_tokens(tok: TextTokenizer, text: str) -> int:
    """Tokens of `text` with special tokens, untruncated."""
    return len(tok.encode(text, add_special_tokens=True).ids)


def special_token_count(tok: TextTokenizer) -> int:
    return count_tokens(tok, "")


def _running_text(sentences: list[str], start: int, min_chars: int) -> str:
    parts: list[str] = []
    size = 0
    i = start
    while size < min_chars:
        s = sentences[i % len(sentences)]
        parts.append(s)
        size += len(s) + 1
        i += 1
    return " ".join(parts)


def _skip_tokens(tok: TextTokenizer, text: str, n: int) -> str:
    """`text` from its `n`-th token on (at that token's first character), leading spaces removed."""
    if n <= 0:
        return text
    offsets = tok.encode(text, add_special_tokens=False).offsets
    return text[offsets[n][0]:].lstrip() if n < len(offsets) else ""


def text_with_tokens(
    tok: TextTokenizer, sentences: list[str], n_tokens: int, start: int = 0, skip_tokens: int = 0
) -> str:
    """A text of corpus sentences from `start` on that has exactly `n_tokens` tokens (special tokens included).

    With `skip_tokens`, the text begins that many tokens into sentence `start` instead: another
    text from the same sentences, for when more texts are needed than the corpus has sentences.
    The text is cut at a token boundary; re-tokenizing a cut text can merge or split pieces at the
    cut, so nearby cut points are tried until the count is exact.
    """
    n_special = special_token_count(tok)
    if n_tokens < n_special:
        raise ConfigError(f"Cannot build a text of {n_tokens} tokens: the tokenizer adds {n_special} special tokens")
    if n_tokens == n_special:
        return ""
    body = n_tokens - n_special
    for attempt in range(len(sentences)):
        source = _running_text(sentences, start + attempt, min_chars=(body + skip_tokens) * 8 + 64)
        source = _skip_tokens(tok, source, skip_tokens)
        enc = tok.encode(source, add_special_tokens=False)
        if len(enc.ids) < body + 8:
            continue
        for delta in (0, 1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6):
            k = body + delta
            if k < 1:
                continue
            candidate = source[: enc.offsets[k - 1][1]].rstrip()
            if candidate and count_tokens(tok, candidate) == n_tokens:
                return candidate
    raise ConfigError(f"Could not build a text of exactly {n_tokens} tokens from the corpus")


def long_text(tok: TextTokenizer, sentences: list[str], n_tokens_at_least: int, start: int = 0) -> str:
    """A text of corpus sentences that has at least `n_tokens_at_least` tokens."""
    chars = n_tokens_at_least * 2
    while True:
        text = _running_text(sentences, start, min_chars=chars)
        if count_tokens(tok, text) >= n_tokens_at_least:
            return text
        chars *= 2


def parity_texts(tok: TextTokenizer, sentences: list[str], max_seq_length: int) -> list[str]:
    """The fixed multilingual batch the parity gate and `verify` use.

    Lengths run from the special tokens alone up to max_seq_length (or PARITY_MAX_TOKENS), so the
    batch is padded; when the whole context fits, one over-long text must be truncated.
    """
    cap = min(max_seq_length, PARITY_MAX_TOKENS)
    texts = [
        "",
        "Hi",
        "Embeddings map text to vectors.",
        "今天早上的地铁特别挤。",
        "Утренний поезд задержался из-за снегопада ❄️.",
        "تفتح المكتبة العامة أبوابها حتى منتصف الليل.",
        "桜が満開になると、公園は花見の人でいっぱいになります🌸。",
        text_with_tokens(tok, sentences, min(cap, 40), start=7),
        text_with_tokens(tok, sentences, cap // 2, start=101),
        text_with_tokens(tok, sentences, cap, start=211),
    ]
    if max_seq_length <= PARITY_MAX_TOKENS:
        texts.append(long_text(tok, sentences, max_seq_length + max_seq_length // 2 + 1, start=17))
    return texts
