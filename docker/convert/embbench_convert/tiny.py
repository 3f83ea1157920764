"""The embedded tiny models: a sentencepiece tokenizer trained on the corpus and random weights.

Everything here is deterministic: the same corpus, seed and tool versions give the same bytes.
"""

from __future__ import annotations

import io
import json
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


def make_qwen3_tokenizer(out_dir: Path, max_seq_length: int):
    """Turns the XLM-R style tokenizer in `out_dir` into Qwen3-Embedding's conventions: <|endoftext|>
    added as a special token, appended by the post-processor, and the pad token (as in Qwen3); no
    <s> in front. The sentencepiece model goes: its ids no longer follow the fairseq mapping."""
    from tokenizers import AddedToken, Tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer.from_file(str(out_dir / "tokenizer.json"))
    tok.add_special_tokens([AddedToken(END_OF_TEXT, special=True, normalized=False)])
    data = json.loads(tok.to_str())
    data["post_processor"] = qwen3_post_processor(tok.token_to_id(END_OF_TEXT))
    tok = Tokenizer.from_str(json.dumps(data))
    for name in (SPM_FILE, "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (out_dir / name).unlink(missing_ok=True)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=END_OF_TEXT, pad_token=END_OF_TEXT, unk_token="<unk>",
        model_max_length=max_seq_length, padding_side="right",
    )
    fast.save_pretrained(str(out_dir))
    _tidy_tokenizer_config(out_dir / "tokenizer_config.json")
    return fast


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

    log("tokenizer", f"training a sentencepiece Unigram model on '{corpus_dir}'")
    fast = write_tokenizer(train_sentencepiece(corpus_dir), out_dir, entry.max_seq_length)
    if entry.architecture == "qwen3":
        fast = make_qwen3_tokenizer(out_dir, entry.max_seq_length)
    log("weights", f"random {entry.architecture} weights from seed {SEED}")
    model = build_model(
        entry.architecture,
        vocab_size=len(fast),
        hidden=hidden_size(entry),
        max_seq_length=entry.max_seq_length,
        # Qwen3 pads with <|endoftext|>, the token last-token pooling reads: as a model pad id it would
        # get an all-zero embedding row, so the model config names none (padding is masked anyway).
        pad_id=None if entry.architecture == "qwen3" else fast.pad_token_id,
        bos_id=fast.bos_token_id,
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
