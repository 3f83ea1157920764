"""The tiny decoder twins (Qwen3 last-token pooling, Gemma3 bidirectional mean) convert and pass the gate."""

import json

import pytest

from conftest import converted


@pytest.mark.parametrize("model, pooling", [("tiny-qwen3", "last_token"), ("tiny-gemma3", "mean")])
def test_tiny_decoder_converts_with_passing_parity(tmp_path_factory, model, pooling):
    out = converted(tmp_path_factory, model, model)
    facts = json.loads((out / "embbench_model.json").read_text())
    assert facts["pooling"] == pooling and facts["embedding_dim"] == 64
    manifest = json.loads((out / "manifest.json").read_text())
    parity = manifest["parity"]
    # ONNX Runtime's transformer optimizer fuses encoders only: decoders serve onnx/model.onnx.
    assert "ort_graph" not in facts and not (out / "onnx" / "model_fused.onnx").exists()
    assert manifest["ort_graph"]["file"] is None and "encoders only" in manifest["ort_graph"]["reason"]
    assert manifest["openvino_source"] == "onnx/model.onnx"
    for fmt in ("onnxruntime", "openvino"):
        assert parity[fmt]["passed"], parity[fmt]
        assert parity[fmt]["max_abs_diff"] <= 1e-4 and parity[fmt]["min_cosine"] >= 0.9999
