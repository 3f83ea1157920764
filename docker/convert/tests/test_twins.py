"""The tiny twins carry what makes their families different: tiny-gemma3 (Gemma3's BPE with byte
fallback, <bos> ... <eos>, bidirectional sliding attention, mean pooling, two Dense layers, prompts,
Matryoshka sizes) and tiny-qwen3 (Qwen2's byte-level BPE, the tokenizer appends <|endoftext|>, causal,
last-token pooling, prompts). Both convert and pass the gate."""

import json
import unicodedata

import numpy as np
import pytest
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from conftest import CORPUS_DIR, MODELS_FILE, tree_hashes

QWEN3_QUERY = "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:"


def test_tiny_gemma3_model_json_is_the_contracts_example(tiny_gemma3):
    facts = json.loads((tiny_gemma3 / "embbench_model.json").read_text())
    # docker/CONTRACT.md, "Model folder", word for word (no ort_graph: decoders get no fused graph)
    assert facts == {
        "name": "tiny-gemma3",
        "architecture": "gemma3",
        "attention": "bidirectional",
        "pooling": "mean",
        "dense": [
            {"in": 64, "out": 256, "bias": False, "activation": "identity", "path": "pytorch/2_Dense"},
            {"in": 256, "out": 64, "bias": False, "activation": "identity", "path": "pytorch/3_Dense"},
        ],
        "normalize": True,
        "max_seq_length": 512,
        "embedding_dim": 64,
        "prompts": {"query": "task: search result | query: ", "document": "title: none | text: "},
        "dimensions": {"min": 16, "max": 64, "sizes": [16, 32, 48, 64]},
    }


def test_tiny_qwen3_model_json(tiny_qwen3):
    facts = json.loads((tiny_qwen3 / "embbench_model.json").read_text())
    assert facts == {
        "name": "tiny-qwen3",
        "architecture": "qwen3",
        "attention": "causal",
        "pooling": "last_token",
        "dense": [],
        "normalize": True,
        "max_seq_length": 512,
        "embedding_dim": 64,
        "prompts": {"query": QWEN3_QUERY, "document": ""},
        "dimensions": {"min": 8, "max": 64},
    }


def test_tiny_gemma3_has_sentence_transformers_modules_with_dense_weights(tiny_gemma3):
    pt = tiny_gemma3 / "pytorch"
    modules = json.loads((pt / "modules.json").read_text())
    assert [(m["path"], m["type"].rsplit(".", 1)[1]) for m in modules] == [
        ("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Dense", "Dense"), ("3_Dense", "Dense"),
        ("4_Normalize", "Normalize"),
    ]
    pooling = json.loads((pt / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_mean_tokens"] and not pooling["pooling_mode_lasttoken"]
    for path, shape in (("2_Dense", [256, 64]), ("3_Dense", [64, 256])):
        cfg = json.loads((pt / path / "config.json").read_text())
        assert cfg == {"in_features": shape[1], "out_features": shape[0], "bias": False,
                       "activation_function": "torch.nn.modules.linear.Identity"}
        tensors = load_file(str(pt / path / "model.safetensors"))
        assert set(tensors) == {"linear.weight"} and list(tensors["linear.weight"].shape) == shape
        assert tensors["linear.weight"].dtype == np.float32 and np.abs(tensors["linear.weight"]).max() > 0.01
    st = json.loads((pt / "config_sentence_transformers.json").read_text())
    assert st["prompts"] == {"query": "task: search result | query: ", "document": "title: none | text: "}
    cfg = json.loads((pt / "config.json").read_text())
    assert cfg["use_bidirectional_attention"] is True
    assert cfg["layer_types"] == ["sliding_attention", "full_attention"]


def test_tiny_qwen3_tokenizer_appends_end_of_text_like_qwen3_embedding(tiny_qwen3):
    pt = tiny_qwen3 / "pytorch"
    tok = Tokenizer.from_file(str(pt / "tokenizer.json"))
    eot = tok.token_to_id("<|endoftext|>")
    assert eot is not None
    data = json.loads((pt / "tokenizer.json").read_text())
    # Qwen3-Embedding's own shape: Sequence [ByteLevel (offsets only), TemplateProcessing "$A <|endoftext|>"]
    post = data["post_processor"]
    assert post["type"] == "Sequence" and [p["type"] for p in post["processors"]] == ["ByteLevel", "TemplateProcessing"]
    assert post["processors"][1]["single"] == [{"Sequence": {"id": "A", "type_id": 0}},
                                               {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}]
    assert tok.encode("").ids == [eot]
    ids = tok.encode("Hello world").ids
    assert ids[-1] == eot and eot not in ids[:-1] and len(ids) >= 3
    assert tok.encode("Hello world", add_special_tokens=False).ids == ids[:-1], "nothing is prepended"
    config = json.loads((pt / "tokenizer_config.json").read_text())
    assert config["pad_token"] == "<|endoftext|>" and config["padding_side"] == "right"
    assert config["eos_token"] == "<|endoftext|>" and config["bos_token"] is None and config["unk_token"] is None
    assert not (pt / "sentencepiece.bpe.model").exists()
    modules = json.loads((pt / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    assert json.loads((pt / "1_Pooling" / "config.json").read_text())["pooling_mode_lasttoken"] is True
    st = json.loads((pt / "config_sentence_transformers.json").read_text())
    assert st["prompts"] == {"query": QWEN3_QUERY, "document": ""}


def test_tiny_qwen3_tokenizer_is_a_byte_level_bpe_like_qwen3_embedding(tiny_qwen3):
    """The kind of Qwen3-Embedding's tokenizer.json (transformers' Qwen2Converter): NFC, Split on Qwen2's
    regex then ByteLevel, a BPE over bytes with no unknown token, Qwen's added tokens after the vocabulary."""
    from tokenizers.pre_tokenizers import ByteLevel

    from embbench_convert.tiny import QWEN2_REGEX

    pt = tiny_qwen3 / "pytorch"
    data = json.loads((pt / "tokenizer.json").read_text())
    assert data["normalizer"] == {"type": "NFC"}
    assert data["pre_tokenizer"] == {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": QWEN2_REGEX}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]}
    assert data["decoder"]["type"] == "ByteLevel"
    model = data["model"]
    assert model["type"] == "BPE" and model["unk_token"] is None and model["byte_fallback"] is False
    assert len(model["merges"]) > 1000
    vocab = model["vocab"]
    assert 2000 <= len(vocab) <= 4000
    # every byte is a piece: ids 0-255 in GPT-2's byte order
    assert sorted(vocab, key=vocab.get)[:256] == sorted(ByteLevel.alphabet())
    added = [(a["id"], a["content"], a["special"]) for a in data["added_tokens"]]
    n = len(vocab)
    assert added == [(n, "<|endoftext|>", True), (n + 1, "<|im_start|>", True), (n + 2, "<|im_end|>", True)]
    tok = Tokenizer.from_file(str(pt / "tokenizer.json"))
    for text in ["Hello  world", "今天早上的地铁特别挤。", "emoji \U0001f600 and \u00e9 e\u0301", "a\n\n b\t"]:
        enc = tok.encode(text)
        assert tok.decode(enc.ids) == unicodedata.normalize("NFC", text)
        assert tok.token_to_id("<unk>") is None
    # the prompt and the special tokens are matched on the raw text
    assert tok.encode("<|im_start|>user<|im_end|>", add_special_tokens=False).ids[0] == n + 1
    # config.json follows the tokenizer
    config = json.loads((pt / "config.json").read_text())
    assert config["vocab_size"] == n + 3
    assert config["bos_token_id"] == n and config["eos_token_id"] == n and config.get("pad_token_id") is None


def test_tiny_gemma3_tokenizer_is_gemmas_bpe_with_byte_fallback(tiny_gemma3):
    """The kind of EmbeddingGemma's tokenizer.json (transformers' GemmaConverter): spaces as U+2581, BPE
    with byte fallback over <0x00>..<0xFF>, <pad>=0 <eos>=1 <bos>=2 <unk>=3, <bos> $A <eos>."""
    pt = tiny_gemma3 / "pytorch"
    data = json.loads((pt / "tokenizer.json").read_text())
    assert data["normalizer"] == {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}
    assert data["pre_tokenizer"] == {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious",
                                     "invert": False}
    assert data["decoder"] == {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}]}
    model = data["model"]
    assert model["type"] == "BPE" and model["byte_fallback"] is True and model["unk_token"] == "<unk>"
    assert model["fuse_unk"] is True and len(model["merges"]) > 1000
    vocab = model["vocab"]
    assert 2000 <= len(vocab) <= 4000
    order = sorted(vocab, key=vocab.get)
    assert order[:4] == ["<pad>", "<eos>", "<bos>", "<unk>"]
    assert order[4:260] == [f"<0x{b:02X}>" for b in range(256)]
    assert [(a["id"], a["content"]) for a in data["added_tokens"]] == [(0, "<pad>"), (1, "<eos>"), (2, "<bos>"), (3, "<unk>")]
    post = data["post_processor"]
    assert post["type"] == "TemplateProcessing"
    assert post["single"] == [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                              {"SpecialToken": {"id": "<eos>", "type_id": 0}}]
    tok = Tokenizer.from_file(str(pt / "tokenizer.json"))
    assert tok.encode("").ids == [2, 1]
    enc = tok.encode("Hello  world")
    assert enc.ids[0] == 2 and enc.ids[-1] == 1 and "\u2581" in "".join(enc.tokens)
    # a character the tiny vocabulary lacks is spelled in its UTF-8 bytes, not <unk>
    emoji = tok.encode("\U0001f600", add_special_tokens=False)
    assert emoji.tokens == ["<0xF0>", "<0x9F>", "<0x98>", "<0x80>"]
    for text in ["Hello  world", "今天早上的地铁特别挤。", "emoji \U0001f600 and \u00e9", "  two  spaces  "]:
        assert tok.decode(tok.encode(text).ids) == text
        assert 3 not in tok.encode(text).ids
    config = json.loads((pt / "tokenizer_config.json").read_text())
    assert config["pad_token"] == "<pad>" and config["padding_side"] == "right"
    assert config["add_bos_token"] is True and config["add_eos_token"] is True
    model_config = json.loads((pt / "config.json").read_text())
    assert model_config["vocab_size"] == len(vocab)
    assert (model_config["pad_token_id"], model_config["eos_token_id"], model_config["bos_token_id"]) == (0, 1, 2)


@pytest.mark.parametrize("fixture", ["tiny_qwen3", "tiny_gemma3"])
def test_tiny_decoder_converts_with_passing_parity(request, fixture):
    out = request.getfixturevalue(fixture)
    facts = json.loads((out / "embbench_model.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    parity = manifest["parity"]
    # ONNX Runtime's transformer optimizer fuses encoders only: decoders serve onnx/model.onnx.
    assert "ort_graph" not in facts and not (out / "onnx" / "model_fused.onnx").exists()
    assert manifest["ort_graph"]["file"] is None and "encoders only" in manifest["ort_graph"]["reason"]
    assert manifest["openvino_source"] == "onnx/model.onnx"
    for fmt in ("onnxruntime", "openvino"):
        assert parity[fmt]["passed"], parity[fmt]
        assert parity[fmt]["max_abs_diff"] <= 1e-4 and parity[fmt]["min_cosine"] >= 0.9999


def test_tiny_gemma3_graphs_contain_the_dense_layers(tiny_gemma3):
    """ONNX Runtime and OpenVINO give the reference's rows; the rows without the Dense layers are far off."""
    from embbench_convert import export, parity

    ref = json.loads((tiny_gemma3 / "reference" / "embeddings.json").read_text())
    tok = parity.load_tokenizer(tiny_gemma3 / "pytorch" / "tokenizer.json", 512, "<pad>")
    ids, mask = parity.encode_batch(tok, ref["texts"])
    reference = np.array(ref["embeddings"], dtype=np.float32)
    without_dense = parity.torch_reference(export.load_hf_model(tiny_gemma3 / "pytorch", "sdpa"), "mean", ids, mask)
    assert not parity.compare(reference, without_dense, parity.FP32_THRESHOLDS)["passed"]
    assert parity.compare(reference, without_dense, parity.FP32_THRESHOLDS)["min_cosine"] < 0.9
    for out in (parity.run_onnxruntime(tiny_gemma3 / "onnx" / "model.onnx", ids, mask),
                parity.run_openvino(tiny_gemma3 / "openvino" / "model.xml", ids, mask)):
        assert parity.compare(reference, out, parity.FP32_THRESHOLDS)["passed"]


@pytest.mark.parametrize("model", ["tiny-gemma3", "tiny-qwen3"])
def test_tiny_decoder_pytorch_folder_is_built_deterministically(tmp_path, model):
    """Tokenizer training included: the same bytes twice."""
    from embbench_convert.config import load_entry
    from embbench_convert.tiny import build_embedded

    entry = load_entry(MODELS_FILE, model)
    build_embedded(entry, CORPUS_DIR, tmp_path / "a")
    build_embedded(entry, CORPUS_DIR, tmp_path / "b")
    assert tree_hashes(tmp_path / "a") == tree_hashes(tmp_path / "b")
    assert "tokenizer.json" in tree_hashes(tmp_path / "a")
