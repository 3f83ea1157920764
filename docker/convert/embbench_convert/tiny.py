"""The embedded tiny models: a tokenizer trained on the corpus and random weights.

Each twin carries its family's tokenizer kind: tiny-xlmr a sentencepiece Unigram model (XLM-R's), tiny-qwen3
a byte-level BPE (Qwen2's pipeline, as Qwen3-Embedding's tokenizer.json), tiny-gemma3 a BPE with byte
fallback (Gemma3's, as EmbeddingGemma's tokenizer.json). Everything here is deterministic: the same corpus,
seed and tool versions give the same bytes.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

from .corpus import load_sentences
from .errors import ConfigError
from .progress import log

SEED = 20240917
VOCAB_SIZE = 3000
SPM_FILE = "sentencepiece.bpe.model"  # the name XLM-R's own tokenizer uses

# Tiny sizes per architecture; the hidden size is the embedding size models.yaml declares.
TINY_LAYERS = 2
TINY_HEADS = 4
TINY_INTERMEDIATE = 128
# Far above the usual 0.02: with 0.02 a tiny random model gives every text nearly the same
# embedding (cosine ~1.000 between unrelated texts) and barely reacts to a dropped attention mask
# (cosine 0.9998), so parity checks on it would prove little. With 0.5, unrelated texts sit near
# cosine 0.7 and ignoring the padding mask moves embeddings by ~0.15.
TINY_INIT_RANGE = 0.5
# Qwen3-Embedding's tokenizer appends this token to every text (its tokenizer.json post-processor) and
# pads with it; last-token pooling reads it.
END_OF_TEXT = "<|endoftext|>"
# Qwen2/Qwen3's first added tokens, special, after the BPE vocabulary (ids 151643-151645 in the real one).
QWEN_ADDED_TOKENS = [END_OF_TEXT, "<|im_start|>", "<|im_end|>"]
# Qwen2's (and Qwen3's) pre-tokenizer regex, as transformers' Qwen2Converter and their tokenizer.json have it.
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
               r"\s*[\r\n]+|\s+(?!\S)|\s+")
# Gemma's ids: <pad>=0 <eos>=1 <bos>=2 <unk>=3, then (as a sentencepiece model lays them out) the 256
# byte-fallback pieces <0x00>..<0xFF>, then the BPE pieces.
GEMMA_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>"]
GEMMA_SPACE = "\u2581"  # sentencepiece's whitespace mark
# A corpus character seen fewer times than this is left out of tiny-gemma3's alphabet, so it is encoded
# with byte fallback pieces (printable ASCII is always in): every corpus language has some.
GEMMA_MIN_CHAR_COUNT = 2


def train_sentencepiece(corpus_dir: Path) -> bytes:
    """A Unigram sentencepiece model trained on the corpus, with XLM-R's own special ids.

    The trainer is fed from memory (no file path lands in the model) on one thread with a fixed seed.
    """
    import sentencepiece as spm

    spm.set_random_generator_seed(SEED)
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(load_sentences(corpus_dir)),
        model_writer=out,
        model_type="unigram",
        vocab_size=VOCAB_SIZE,
        character_coverage=1.0,
        hard_vocab_limit=False,
        num_threads=1,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
    )
    return out.getvalue()


def write_tokenizer(spm_bytes: bytes, out_dir: Path, max_seq_length: int):
    """Writes the sentencepiece model and the HF fast tokenizer files made from it; returns the fast tokenizer.

    The fast tokenizer follows XLM-R (fairseq) ids: <s>=0, <pad>=1, </s>=2, <unk>=3, sentencepiece
    id + 1 for every other piece, <mask> last. A libsentencepiece user reproduces tokenizer.json's
    ids with that mapping.
    """
    from transformers import XLMRobertaTokenizer, XLMRobertaTokenizerFast

    out_dir.mkdir(parents=True, exist_ok=True)
    spm_path = out_dir / SPM_FILE
    spm_path.write_bytes(spm_bytes)
    slow = XLMRobertaTokenizer(vocab_file=str(spm_path), model_max_length=max_seq_length)
    fast = XLMRobertaTokenizerFast(
        vocab_file=str(spm_path), tokenizer_object=None, __slow_tokenizer=slow, model_max_length=max_seq_length
    )
    fast.save_pretrained(str(out_dir))
    # save_pretrained re-copies the sentencepiece model; keep our bytes and drop fields that vary.
    spm_path.write_bytes(spm_bytes)
    _tidy_tokenizer_config(out_dir / "tokenizer_config.json")
    return fast


def qwen3_post_processor(eot_id: int) -> dict:
    """Qwen3-Embedding's tokenizer.json post-processor: a Sequence of ByteLevel (offsets only) and a
    TemplateProcessing that appends <|endoftext|> after the text (no token before it)."""
    eot = {"SpecialToken": {"id": END_OF_TEXT, "type_id": 0}}
    return {
        "type": "Sequence",
        "processors": [
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
            {
                "type": "TemplateProcessing",
                "single": [{"Sequence": {"id": "A", "type_id": 0}}, eot],
                "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 0}}, eot],
                "special_tokens": {END_OF_TEXT: {"id": END_OF_TEXT, "ids": [eot_id], "tokens": [END_OF_TEXT]}},
            },
        ],
    }


def train_qwen3_tokenizer(corpus_dir: Path):
    """A byte-level BPE trained on the corpus with Qwen2's pipeline (transformers' Qwen2Converter): NFC,
    Split on Qwen2's regex (Isolated), ByteLevel without its own regex or a prefix space, no unknown
    token (every byte is in the alphabet, ids 0-255 in GPT-2's byte order); Qwen's added tokens after
    the vocabulary; <|endoftext|> appended by the post-processor."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False, fuse_unk=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, min_frequency=1, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(load_sentences(corpus_dir), trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in QWEN_ADDED_TOKENS])
    data = json.loads(tok.to_str())
    # The ByteLevel flags as Qwen3's file has them (the Python constructors leave some at their defaults).
    data["pre_tokenizer"]["pretokenizers"][1].update(add_prefix_space=False, trim_offsets=False, use_regex=False)
    data["decoder"].update(add_prefix_space=False, trim_offsets=False, use_regex=False)
    data["post_processor"] = qwen3_post_processor(tok.token_to_id(END_OF_TEXT))
    return Tokenizer.from_str(json.dumps(data))


def gemma_alphabet(sentences: list[str]) -> list[str]:
    """tiny-gemma3's characters: printable ASCII, the whitespace mark, and every corpus character seen at
    least GEMMA_MIN_CHAR_COUNT times; sorted, so the trainer's choice does not depend on hash order."""
    counts = Counter(ch for s in sentences for ch in s.replace(" ", GEMMA_SPACE))
    chars = {chr(c) for c in range(0x21, 0x7F)} | {GEMMA_SPACE}
    chars |= {ch for ch, n in counts.items() if n >= GEMMA_MIN_CHAR_COUNT}
    return sorted(chars)


def train_gemma3_tokenizer(corpus_dir: Path):
    """A BPE with byte fallback trained on the corpus, shaped as EmbeddingGemma's tokenizer.json (what
    transformers' GemmaConverter makes of Gemma3's sentencepiece model): normalizer Replace " " -> U+2581,
    pre-tokenizer Split " " MergedWithPrevious (a no-op after the normalizer: merges run over the whole
    text, as in sentencepiece), BPE with <unk>, fuse_unk and byte_fallback, the 256 <0xNN> pieces,
    decoder Replace U+2581 -> " ", ByteFallback, Fuse. The post-processor is GemmaTokenizerFast's.

    Training splits words before the whitespace mark instead, so no merge crosses a word boundary
    (sentencepiece's split_by_whitespace); characters outside gemma_alphabet() fall back to bytes.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    sentences = load_sentences(corpus_dir)
    alphabet = gemma_alphabet(sentences)
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", GEMMA_SPACE)
    tok.pre_tokenizer = pre_tokenizers.Split(GEMMA_SPACE, behavior="merged_with_next")
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, min_frequency=1, show_progress=False,
                                  special_tokens=GEMMA_SPECIALS, initial_alphabet=alphabet,
                                  limit_alphabet=len(alphabet))
    tok.train_from_iterator(sentences, trainer)
    data = json.loads(tok.to_str())
    trained = sorted(data["model"]["vocab"].items(), key=lambda kv: kv[1])
    assert [t for t, _ in trained[:len(GEMMA_SPECIALS)]] == GEMMA_SPECIALS, trained[:len(GEMMA_SPECIALS)]
    pieces = GEMMA_SPECIALS + [f"<0x{b:02X}>" for b in range(256)] + [t for t, _ in trained[len(GEMMA_SPECIALS):]]
    data["model"]["vocab"] = {t: i for i, t in enumerate(pieces)}
    data["added_tokens"] = [{**a, "id": pieces.index(a["content"])} for a in data["added_tokens"]]
    tok = Tokenizer.from_str(json.dumps(data))
    tok.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
    tok.decoder = decoders.Sequence([decoders.Replace(GEMMA_SPACE, " "), decoders.ByteFallback(), decoders.Fuse()])
    return tok


def write_qwen3_tokenizer(corpus_dir: Path, out_dir: Path, max_seq_length: int, padding_side: str = "right"):
    """tiny-qwen3's tokenizer files (tokenizer.json, tokenizer_config.json as Qwen2TokenizerFast writes
    them: <|endoftext|> the eos and pad token, no bos or unk); returns the fast tokenizer."""
    from transformers import Qwen2TokenizerFast

    out_dir.mkdir(parents=True, exist_ok=True)
    fast = Qwen2TokenizerFast(
        tokenizer_object=train_qwen3_tokenizer(corpus_dir), unk_token=None, bos_token=None, eos_token=END_OF_TEXT,
        pad_token=END_OF_TEXT, model_max_length=max_seq_length, padding_side=padding_side,
    )
    fast.save_pretrained(str(out_dir))
    _tidy_tokenizer_config(out_dir / "tokenizer_config.json")
    return fast


def write_gemma3_tokenizer(corpus_dir: Path, out_dir: Path, max_seq_length: int):
    """tiny-gemma3's tokenizer files, as GemmaTokenizerFast writes them with EmbeddingGemma's settings:
    <bos> before and <eos> after every text (add_bos_token, add_eos_token), <pad> the pad token, right
    padding; returns the fast tokenizer."""
    from transformers import GemmaTokenizerFast

    out_dir.mkdir(parents=True, exist_ok=True)
    fast = GemmaTokenizerFast(
        tokenizer_object=train_gemma3_tokenizer(corpus_dir), add_bos_token=True, add_eos_token=True,
        model_max_length=max_seq_length, padding_side="right",
    )
    fast.save_pretrained(str(out_dir))
    _tidy_tokenizer_config(out_dir / "tokenizer_config.json")
    return fast


def write_family_tokenizer(architecture: str, corpus_dir: Path, out_dir: Path, max_seq_length: int):
    """The tokenizer of `architecture`'s family, trained on the corpus, written into `out_dir`."""
    if architecture == "qwen3":
        log("tokenizer", f"training a byte-level BPE (Qwen2's pipeline) on '{corpus_dir}'")
        return write_qwen3_tokenizer(corpus_dir, out_dir, max_seq_length)
    if architecture == "gemma3":
        log("tokenizer", f"training a BPE with byte fallback (Gemma3's pipeline) on '{corpus_dir}'")
        return write_gemma3_tokenizer(corpus_dir, out_dir, max_seq_length)
    log("tokenizer", f"training a sentencepiece Unigram model on '{corpus_dir}'")
    return write_tokenizer(train_sentencepiece(corpus_dir), out_dir, max_seq_length)


def _tidy_tokenizer_config(path: Path) -> None:
    cfg = json.loads(path.read_text(encoding="utf-8"))
    cfg.pop("name_or_path", None)
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def build_model(architecture: str, vocab_size: int, hidden: int, max_seq_length: int, pad_id: int | None, bos_id: int | None,
                eos_id: int, bidirectional: bool = True):
    """A randomly initialised model of the given family, from torch's RNG seeded with SEED."""
    import torch

    common = dict(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=TINY_LAYERS,
        num_attention_heads=TINY_HEADS,
        intermediate_size=TINY_INTERMEDIATE,
        pad_token_id=pad_id,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        initializer_range=TINY_INIT_RANGE,
    )
    torch.manual_seed(SEED)
    if architecture == "xlm-roberta":
        from transformers import XLMRobertaConfig, XLMRobertaModel

        cfg = XLMRobertaConfig(**common, max_position_embeddings=max_seq_length + 2, type_vocab_size=1, layer_norm_eps=1e-5)
        return XLMRobertaModel(cfg, add_pooling_layer=False)
    if architecture == "qwen3":
        from transformers import Qwen3Config, Qwen3Model

        cfg = Qwen3Config(
            **common,
            num_key_value_heads=TINY_HEADS // 2,
            head_dim=hidden // TINY_HEADS,
            max_position_embeddings=max_seq_length,
            tie_word_embeddings=True,
        )
        return Qwen3Model(cfg)
    if architecture == "gemma3":
        from transformers import Gemma3TextConfig, Gemma3TextModel

        cfg = Gemma3TextConfig(
            **common,
            num_key_value_heads=TINY_HEADS // 2,
            head_dim=hidden // TINY_HEADS,
            max_position_embeddings=max_seq_length,
            sliding_window=max_seq_length,
            # A sliding and a global layer, as in Gemma3 (which has 5 sliding per global layer): each
            # has its own mask and rotary base, and a server must get both right.
            layer_types=["sliding_attention", "full_attention"],
            use_bidirectional_attention=bidirectional,
        )
        return Gemma3TextModel(cfg)
    raise ConfigError(f"No tiny model is defined for architecture '{architecture}'")


def build_embedded(entry, corpus_dir: Path, out_dir: Path) -> None:
    """Writes the tiny model `entry` into `out_dir` (the pytorch/ folder): tokenizer files, config, weights."""
    from .modules import write_layout

    fast = write_family_tokenizer(entry.architecture, corpus_dir, out_dir, entry.max_seq_length)
    log("weights", f"random {entry.architecture} weights from seed {SEED}")
    # config.json follows the tokenizer: its vocabulary size (added tokens included) and special ids.
    eot = fast.convert_tokens_to_ids(END_OF_TEXT) if entry.architecture == "qwen3" else None
    model = build_model(
        entry.architecture,
        vocab_size=len(fast),
        hidden=hidden_size(entry),
        max_seq_length=entry.max_seq_length,
        # Qwen3 pads with <|endoftext|>, the token last-token pooling reads: as a model pad id it would
        # get an all-zero embedding row, so the model config names none (padding is masked anyway;
        # servers read the pad token from tokenizer_config.json). Its bos and eos are <|endoftext|>,
        # as in Qwen3-Embedding's config.json.
        pad_id=None if entry.architecture == "qwen3" else fast.pad_token_id,
        bos_id=eot if entry.architecture == "qwen3" else fast.bos_token_id,
        eos_id=fast.eos_token_id,
        bidirectional=entry.attention == "bidirectional",
    )
    model.eval()
    model.save_pretrained(str(out_dir), safe_serialization=True)
    log("modules", f"sentence-transformers layout: {entry.pooling} pooling, {len(entry.dense)} Dense layers, "
                   f"{len(entry.prompts)} prompts")
    write_layout(entry, out_dir, hidden_size(entry), SEED)


def hidden_size(entry) -> int:
    """The transformer's width: the first Dense layer's input, else the embedding size."""
    return entry.dense[0].in_features if entry.dense else entry.embedding_dim
