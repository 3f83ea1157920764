"""reference/embeddings.json: the authors' library, the prompt and Matryoshka cases, and the mistakes.

The mistakes are proven against deliberately broken graphs: a graph exported without the Dense
layers, with causal attention, with another pooling, or fed without the end-of-text token gives
rows that fail the reference and match the mistake verify would then name.
"""

import json

import numpy as np
import pytest

from embbench_convert import export, parity
from embbench_convert.sources import pad_token

QWEN3_QUERY = "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:"


def load(model_dir):
    return json.loads((model_dir / "reference" / "embeddings.json").read_text())


def batch(model_dir, texts, add_special_tokens=True):
    tok = parity.load_tokenizer(model_dir / "pytorch" / "tokenizer.json", 512, pad_token(model_dir / "pytorch"))
    return parity.encode_batch(tok, texts, add_special_tokens)


def unit_rows(rows, width):
    rows = np.asarray(rows)
    assert rows.shape[1] == width
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "fixture, library, mistakes",
    [
        ("tiny_gemma3", "sentence-transformers", {
            "dense layers skipped", "cls pooling instead of mean", "last_token pooling instead of mean",
            "causal attention instead of bidirectional", "sliding window ignored", "sliding window not halved",
            "prompt 'query' not applied", "prompt 'document' not applied"}),
        ("tiny_qwen3", "sentence-transformers", {
            "cls pooling instead of last_token", "mean pooling instead of last_token",
            "bidirectional attention instead of causal", "<|endoftext|> not appended", "prompt 'query' not applied"}),
        # no Dense, attention or prompt mistakes where the model has none of them
        ("tiny_xlmr", "sentence-transformers", {"mean pooling instead of cls", "last_token pooling instead of cls"}),
        ("minilm", "sentence-transformers", {"cls pooling instead of mean", "last_token pooling instead of mean"}),
    ],
)
def test_reference_names_its_library_and_only_the_mistakes_that_apply(request, fixture, library, mistakes):
    ref = load(request.getfixturevalue(fixture))
    assert ref["library"] == library
    assert {m["name"] for m in ref["mistakes"]} == mistakes
    reference = np.array(ref["embeddings"])
    for m in ref["mistakes"]:
        assert m["cause"].startswith("the server ") and m["cause"].count(".") <= 2, m
        if "prompt_name" in m:
            case = next(c for c in ref["cases"] if c["prompt_name"] == m["prompt_name"] and c["dimensions"] is None)
            target = np.array(case["embeddings"])
        else:
            target = reference
        assert len(m["embeddings"]) == len(target)
        figures = parity.compare(target, np.array(m["embeddings"], dtype=np.float32), parity.FP32_THRESHOLDS)
        assert not figures["passed"], f"{m['name']} equals the reference"


def test_tiny_gemma3_cases_cover_every_prompt_and_two_matryoshka_sizes(tiny_gemma3):
    ref = load(tiny_gemma3)
    keys = [(c["prompt_name"], c["dimensions"]) for c in ref["cases"]]
    assert keys == [("query", None), ("document", None), (None, 16), (None, 32)]
    full = {t: e for t, e in zip(ref["texts"], ref["embeddings"])}
    for case in ref["cases"]:
        width = case["dimensions"] or 64
        unit_rows(case["embeddings"], width)
        assert "" not in case["texts"] or case["prompt_name"] is None
        if case["dimensions"]:
            # truncate, then normalise again (sentence-transformers' truncate_dim + normalize_embeddings)
            cut = np.array([full[t][:width] for t in case["texts"]])
            cut /= np.linalg.norm(cut, axis=1, keepdims=True)
            assert np.abs(cut - np.array(case["embeddings"])).max() < 1e-5
        else:
            plain = np.array([full[t] for t in case["texts"]])
            assert parity.compare(plain, np.array(case["embeddings"], dtype=np.float32), parity.FP32_THRESHOLDS)[
                "min_cosine"] < 0.99, "the prompt changed nothing"


def test_tiny_gemma3_prompt_case_is_what_the_graph_gives_with_the_prompt_prepended(tiny_gemma3):
    ref = load(tiny_gemma3)
    case = next(c for c in ref["cases"] if c["prompt_name"] == "query")
    ids, mask = batch(tiny_gemma3, ["task: search result | query: " + t for t in case["texts"]])
    out = parity.run_onnxruntime(tiny_gemma3 / "onnx" / "model.onnx", ids, mask)
    assert parity.compare(np.array(case["embeddings"], dtype=np.float32), out, parity.FP32_THRESHOLDS)["passed"]


def test_tiny_qwen3_cases_and_the_dimension_range(tiny_qwen3):
    ref = load(tiny_qwen3)
    # {min: 8}: every size from 8 to 64; the cases take the smallest and the middle one
    assert [(c["prompt_name"], c["dimensions"]) for c in ref["cases"]] == [
        ("query", None), ("document", None), (None, 8), (None, 36)]
    document = next(c for c in ref["cases"] if c["prompt_name"] == "document")
    full = {t: e for t, e in zip(ref["texts"], ref["embeddings"])}
    # the document prompt is "": its rows are the plain rows
    assert np.abs(np.array(document["embeddings"]) - np.array([full[t] for t in document["texts"]])).max() < 1e-5


def _matches(rows_a, rows_b) -> bool:
    return parity.compare(np.asarray(rows_a, dtype=np.float32), np.asarray(rows_b, dtype=np.float32),
                          parity.FP32_THRESHOLDS)["passed"]


def _broken_graph(model_dir, tmp_path, name, model, pooling, dense=(), attention=None):
    """A graph exported like convert's but wrong on purpose; returns its rows on the reference texts."""
    import torch

    ref = load(model_dir)
    ids, mask = batch(model_dir, ref["texts"])
    facts = json.loads((model_dir / "embbench_model.json").read_text())
    wrapper = export.make_wrapper(model, facts["architecture"], pooling, dense, attention=attention)
    path = tmp_path / f"{name}.onnx"
    export.export_onnx(wrapper, torch.from_numpy(ids[[1, 7], :40]), torch.from_numpy(mask[[1, 7], :40]), path)
    return parity.run_onnxruntime(path, ids, mask)


def _mistake(ref, name):
    return next(m for m in ref["mistakes"] if m["name"] == name)["embeddings"]


def test_tiny_gemma3_broken_graphs_match_their_mistakes(tiny_gemma3, tmp_path):
    import torch
    from transformers import AutoConfig, AutoModel

    ref = load(tiny_gemma3)
    facts = json.loads((tiny_gemma3 / "embbench_model.json").read_text())
    from embbench_convert.config import DenseSpec

    specs = [DenseSpec(d["in"], d["out"], d["bias"], d["activation"]) for d in facts["dense"]]
    dense = export.load_dense(tiny_gemma3, [d["path"] for d in facts["dense"]], specs)
    eager = export.load_hf_model(tiny_gemma3 / "pytorch", "eager")
    # a stock (causal) Gemma3 reading config.json: its sliding_window is then not halved
    raw = json.loads((tiny_gemma3 / "pytorch" / "config.json").read_text())
    raw["use_bidirectional_attention"] = False
    config = AutoConfig.for_model(raw.pop("model_type"), **raw)
    assert config.sliding_window == 257
    causal = AutoModel.from_pretrained(str(tiny_gemma3 / "pytorch"), config=config, attn_implementation="eager",
                                       dtype=torch.float32).eval()
    cases = {
        "dense layers skipped": _broken_graph(tiny_gemma3, tmp_path, "nodense", eager, "mean"),
        "cls pooling instead of mean": _broken_graph(tiny_gemma3, tmp_path, "cls", eager, "cls", dense),
        "causal attention instead of bidirectional": _broken_graph(tiny_gemma3, tmp_path, "causal", causal, "mean",
                                                                   dense),
    }
    for name, rows in cases.items():
        assert not _matches(ref["embeddings"], rows), name
        assert _matches(_mistake(ref, name), rows), name


def test_tiny_qwen3_broken_serving_matches_its_mistakes(tiny_qwen3, tmp_path):
    ref = load(tiny_qwen3)
    graph = tiny_qwen3 / "onnx" / "model.onnx"
    # the tokenizer's post-processor skipped: no <|endoftext|> (the empty text has no tokens to embed)
    ids, mask = batch(tiny_qwen3, ref["texts"][1:], add_special_tokens=False)
    rows = parity.run_onnxruntime(graph, ids, mask)
    assert not _matches(np.array(ref["embeddings"])[1:], rows)
    assert _matches(np.array(_mistake(ref, "<|endoftext|> not appended"))[1:], rows)
    eager = export.load_hf_model(tiny_qwen3 / "pytorch", "eager")
    for name, rows in {
        "mean pooling instead of last_token": _broken_graph(tiny_qwen3, tmp_path, "mean", eager, "mean"),
        "bidirectional attention instead of causal": _broken_graph(tiny_qwen3, tmp_path, "bidi", eager, "last_token",
                                                                   attention="bidirectional"),
    }.items():
        assert not _matches(ref["embeddings"], rows), name
        assert _matches(_mistake(ref, name), rows), name
    # prompt_name ignored: the query case's texts embedded as they are
    case = next(c for c in ref["cases"] if c["prompt_name"] == "query")
    ids, mask = batch(tiny_qwen3, case["texts"])
    rows = parity.run_onnxruntime(graph, ids, mask)
    assert not _matches(case["embeddings"], rows)
    assert _matches(_mistake(ref, "prompt 'query' not applied"), rows)
