"""Padded-batch parity, re-checked here on a batch convert never saw, for tiny-xlmr and minilm.

The batch mixes lengths from the special tokens alone to the model's max_seq_length plus one
over-long text, so most rows are padded and one is truncated.
"""

import numpy as np
import pytest

from conftest import CORPUS_DIR
from embbench_convert import export, parity
from embbench_convert.corpus import load_sentences, long_text, text_with_tokens
from embbench_convert.payloads import load_plain_tokenizer
from embbench_convert.sources import pad_token


def padded_batch(model_dir, max_len):
    plain = load_plain_tokenizer(model_dir / "pytorch" / "tokenizer.json")
    sentences = load_sentences(CORPUS_DIR)
    lengths = [3, 9, 30, max_len // 3, max_len - 1, max_len]
    texts = ["", "ok 👍"] + [text_with_tokens(plain, sentences, n, start=3 * n + 5) for n in lengths]
    texts.append(long_text(plain, sentences, 2 * max_len, start=29))
    tok = parity.load_tokenizer(model_dir / "pytorch" / "tokenizer.json", max_len, pad_token(model_dir / "pytorch"))
    ids, mask = parity.encode_batch(tok, texts)
    assert ids.shape[1] == max_len and mask.sum(axis=1).min() == 2
    return ids, mask


@pytest.mark.parametrize("fixture, pooling, max_len", [("tiny_xlmr", "cls", 512), ("minilm", "mean", 256)])
def test_onnxruntime_and_openvino_match_pytorch_on_a_padded_batch(request, fixture, pooling, max_len):
    model_dir = request.getfixturevalue(fixture)
    ids, mask = padded_batch(model_dir, max_len)
    reference = parity.torch_reference(export.load_hf_model(model_dir / "pytorch", "sdpa"), pooling, ids, mask)
    outputs = {
        "onnxruntime": parity.run_onnxruntime(model_dir / "onnx" / "model.onnx", ids, mask),
        "onnxruntime_fused": parity.run_onnxruntime(model_dir / "onnx" / "model_fused.onnx", ids, mask),
        "openvino": parity.run_openvino(model_dir / "openvino" / "model.xml", ids, mask),
    }
    for name, out in outputs.items():
        figures = parity.compare(reference, out, parity.FP32_THRESHOLDS)
        assert figures["passed"], parity.format_figures(name, figures)


@pytest.mark.parametrize("fixture, pooling, max_len", [("tiny_xlmr", "cls", 512), ("minilm", "mean", 256)])
def test_the_gate_would_catch_an_export_that_ignores_padding(request, fixture, pooling, max_len):
    """The known trap: a graph that attends to padding. It must land far outside the thresholds."""
    import torch

    model_dir = request.getfixturevalue(fixture)
    ids, mask = padded_batch(model_dir, max_len)
    model = export.load_hf_model(model_dir / "pytorch", "eager")
    reference = parity.torch_reference(model, pooling, ids, mask)
    with torch.no_grad():
        t_ids, t_mask = torch.from_numpy(ids), torch.from_numpy(mask)
        hidden = model(input_ids=t_ids, attention_mask=torch.ones_like(t_mask)).last_hidden_state
        broken = export.pool(hidden, t_mask, pooling).numpy()
    figures = parity.compare(reference, broken, parity.FP32_THRESHOLDS)
    assert not figures["passed"]
    assert figures["max_abs_diff"] > 100 * parity.FP32_THRESHOLDS["max_abs_diff"]


def test_compare_reports_per_row_figures():
    ref = np.eye(3, dtype=np.float32)
    same = parity.compare(ref, ref.copy(), parity.FP32_THRESHOLDS)
    assert same["passed"] and same["max_abs_diff"] == 0
    off = ref.copy()
    off[2] = [0, 0.1, 0.995]
    bad = parity.compare(ref, off, parity.FP32_THRESHOLDS)
    assert not bad["passed"] and bad["worst_row"] == 2
    assert not parity.compare(ref, ref[:2], parity.FP32_THRESHOLDS)["passed"]
    nan = ref.copy()
    nan[0, 0] = np.nan
    assert not parity.compare(ref, nan, parity.FP32_THRESHOLDS)["passed"]
