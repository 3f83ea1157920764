"""The fused graph for ONNX Runtime (onnx/model_fused.onnx): fused ops, signature, masking, fallback."""

import json

import numpy as np
import onnx
import pytest

from conftest import CORPUS_DIR, MODELS_FILE
from embbench_convert import fused, parity
from test_parity import padded_batch

EXPECTED_OPS = {
    "tiny_xlmr": {"Attention": 2, "BiasGelu": 2, "SkipLayerNormalization": 4},
    # BERT also fuses its embeddings (word + position + token type, LayerNorm) into one node.
    "minilm": {"Attention": 6, "BiasGelu": 6, "EmbedLayerNormalization": 1, "SkipLayerNormalization": 12},
}


@pytest.mark.parametrize("fixture", ["tiny_xlmr", "minilm"])
def test_fused_graph_holds_the_fused_ops_and_is_named_for_onnxruntime(request, fixture):
    model_dir = request.getfixturevalue(fixture)
    path = model_dir / "onnx" / "model_fused.onnx"
    assert json.loads((model_dir / "embbench_model.json").read_text())["ort_graph"] == "onnx/model_fused.onnx"
    counts = fused.fused_op_counts(path)
    assert counts == EXPECTED_OPS[fixture]
    manifest = json.loads((model_dir / "manifest.json").read_text())
    record = manifest["ort_graph"]
    assert record["file"] == "onnx/model_fused.onnx" and record["reason"] is None
    assert record["fused_ops"] == counts and record["parity"]["passed"]
    assert manifest["parity"]["onnxruntime_fused"] == record["parity"]
    # OpenVINO's IR is converted from the fused graph too (it ran it as fast or faster: README).
    assert manifest["openvino_source"] == "onnx/model_fused.onnx"
    # No unfused attention is left: every Softmax and the per-head reshapes went into Attention.
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert not ops & {"Softmax", "Transpose", "Reshape"}, ops


@pytest.mark.parametrize("fixture", ["tiny_xlmr", "minilm"])
def test_fused_graph_keeps_the_contract_signature_in_fp32(request, fixture):
    model_dir = request.getfixturevalue(fixture)
    assert fused.signature_problems(model_dir / "onnx" / "model.onnx", model_dir / "onnx" / "model_fused.onnx") == []
    g = onnx.load(str(model_dir / "onnx" / "model_fused.onnx")).graph
    assert {t.data_type for t in g.initializer} <= {onnx.TensorProto.FLOAT, onnx.TensorProto.INT64,
                                                    onnx.TensorProto.INT32}


@pytest.mark.parametrize("fixture, max_len", [("tiny_xlmr", 512), ("minilm", 256)])
def test_fused_graph_masks_exactly_what_model_onnx_masks(request, fixture, max_len):
    """The raw 2-D mask reaches every Attention node: any 0/1 pattern (left padding, holes) gives
    model.onnx's rows, not only right padding (which a per-row length mask would also get right)."""
    model_dir = request.getfixturevalue(fixture)
    ids, mask = padded_batch(model_dir, max_len)
    left_ids, left_mask = np.zeros_like(ids), np.zeros_like(mask)
    for r in range(len(ids)):
        n = int(mask[r].sum())
        left_ids[r, max_len - n:], left_mask[r, max_len - n:] = ids[r, :n], 1
        left_ids[r, :max_len - n] = ids[r, -1]  # the pad id
    holes = mask.copy()
    holes[:, 5:9] = 0
    for name, (i, m) in {"right": (ids, mask), "left": (left_ids, left_mask), "holes": (ids, holes)}.items():
        plain = parity.run_onnxruntime(model_dir / "onnx" / "model.onnx", i, m)
        fused_rows = parity.run_onnxruntime(model_dir / "onnx" / "model_fused.onnx", i, m)
        assert np.abs(plain - fused_rows).max() <= 1e-5, name


@pytest.mark.parametrize("breakage", ["ignores_padding", "no_attention"])
def test_a_bad_fused_graph_is_dropped_and_model_onnx_served(tmp_path, monkeypatch, breakage):
    """A fused graph that fails the gate or fused nothing is deleted; the conversion still succeeds."""
    import shutil

    from embbench_convert.cli import main

    real = fused.fuse

    def bad_fuse(onnx_path, out_path, num_heads, hidden_size):
        if breakage == "no_attention":
            shutil.copyfile(onnx_path, out_path)
            return fused.fused_op_counts(out_path)
        counts = real(onnx_path, out_path, num_heads, hidden_size)
        model = onnx.load(str(out_path))
        for node in model.graph.node:
            if node.op_type == "Attention":
                del node.input[3:]  # no mask input: attends to padding, the known trap
        onnx.save(model, str(out_path))
        return counts

    monkeypatch.setattr(fused, "fuse", bad_fuse)
    out = tmp_path / "tiny-xlmr"
    rc = main(["convert", "--model", "tiny-xlmr", "--models-file", str(MODELS_FILE), "--out", str(out),
               "--corpus-dir", str(CORPUS_DIR)])
    assert rc == 0
    assert "ort_graph" not in json.loads((out / "embbench_model.json").read_text())
    assert not list((out / "onnx").glob("model_fused*"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert "onnxruntime_fused" not in manifest["parity"] and "onnx_fused" not in manifest["precisions"]
    assert manifest["openvino_source"] == "onnx/model.onnx" and manifest["parity"]["openvino"]["passed"]
    record = manifest["ort_graph"]
    assert record["file"] is None
    expected = {"ignores_padding": "failed the parity gate", "no_attention": "no Attention"}[breakage]
    assert expected in record["reason"], record["reason"]
    if breakage == "ignores_padding":
        assert record["parity"]["max_abs_diff"] > 100 * parity.FP32_THRESHOLDS["max_abs_diff"]
