"""convert end to end: folder layout, manifest, determinism, the up-to-date fast path, atomic output."""

import json
import shutil

import onnx
import pytest

from conftest import CORPUS_DIR, MODELS_FILE, convert, tree_hashes


def test_tiny_xlmr_folder_has_the_contract_layout(tiny_xlmr):
    model = json.loads((tiny_xlmr / "embbench_model.json").read_text())
    assert model == {"name": "tiny-xlmr", "architecture": "xlm-roberta", "attention": "bidirectional", "pooling": "cls",
                     "dense": [], "normalize": True, "max_seq_length": 512, "embedding_dim": 64, "prompts": {},
                     "dimensions": {"min": 64, "max": 64, "sizes": [64]}, "ort_graph": "onnx/model_fused.onnx"}
    for rel in ("pytorch/model.safetensors", "pytorch/config.json", "pytorch/tokenizer.json",
                "pytorch/tokenizer_config.json", "pytorch/special_tokens_map.json", "pytorch/sentencepiece.bpe.model",
                "onnx/model.onnx", "onnx/model_fused.onnx", "openvino/model.xml", "openvino/model.bin",
                "openvino_fp16/model.xml", "openvino_fp16/model.bin", "reference/embeddings.json",
                "payloads/index.json"):
        assert (tiny_xlmr / rel).is_file(), rel
    assert not list(tiny_xlmr.parent.glob(".tiny-xlmr.*")), "staging folder left behind"


def test_onnx_graph_has_the_contract_signature(tiny_xlmr):
    g = onnx.load(str(tiny_xlmr / "onnx" / "model.onnx")).graph
    assert [i.name for i in g.input] == ["input_ids", "attention_mask"]
    assert [o.name for o in g.output] == ["sentence_embedding"]
    for i in g.input:
        assert i.type.tensor_type.elem_type == onnx.TensorProto.INT64
        assert [d.dim_param for d in i.type.tensor_type.shape.dim] == ["batch", "sequence"]
    out = g.output[0].type.tensor_type
    assert out.elem_type == onnx.TensorProto.FLOAT
    assert out.shape.dim[0].dim_param == "batch" and out.shape.dim[1].dim_value == 64


def test_manifest_records_hashes_provenance_and_passing_parity(tiny_xlmr):
    m = json.loads((tiny_xlmr / "manifest.json").read_text())
    assert m["source"]["id"] == "embbench/tiny-xlmr" and m["source"]["seed"]
    assert m["opset"] == 17
    assert m["precisions"] == {"onnx": "fp32", "onnx_fused": "fp32", "openvino": "fp32", "openvino_fp16": "fp16"}
    assert m["tool_versions"]["torch"] and m["tool_versions"]["onnxruntime"] == "1.21.1"
    assert set(m["files"]) == set(tree_hashes(tiny_xlmr)) - {"manifest.json"}
    assert m["files"] == {k: v for k, v in tree_hashes(tiny_xlmr).items() if k != "manifest.json"}
    for fmt in ("onnxruntime", "openvino", "onnxruntime_fused"):
        p = m["parity"][fmt]
        assert p["passed"] and p["thresholds"] == {"max_abs_diff": 1e-4, "min_cosine": 0.9999}
        assert p["max_abs_diff"] <= 1e-4 and p["min_cosine"] >= 0.9999
    assert m["parity"]["openvino_fp16"]["passed"]
    counts = m["parity_batch"]["token_counts"]
    assert min(counts) == 2 and max(counts) == 512 and m["parity_batch"]["padded_to"] == 512


def test_reference_has_truncated_over_long_text(tiny_xlmr):
    ref = json.loads((tiny_xlmr / "reference" / "embeddings.json").read_text())
    assert set(ref) >= {"model", "texts", "embeddings", "token_counts"}
    assert len(ref["texts"]) == len(ref["embeddings"]) == len(ref["token_counts"])
    assert ref["truncated"].count(True) == 1 and ref["token_counts"][ref["truncated"].index(True)] == 512
    assert ref["texts"][0] == "" and ref["token_counts"][0] == 2
    assert all(len(e) == 64 for e in ref["embeddings"])


def test_tiny_xlmr_is_bit_for_bit_deterministic(tiny_xlmr, tiny_xlmr_again):
    first, second = tree_hashes(tiny_xlmr), tree_hashes(tiny_xlmr_again)
    assert first == second


def test_convert_again_is_up_to_date_in_seconds(tiny_xlmr):
    run = convert("tiny-xlmr", tiny_xlmr, "--fp16")
    assert run.returncode == 0, run.stderr
    assert "up to date" in run.stderr
    assert run.summary["status"] == "up to date"
    assert run.seconds < 5, f"up-to-date check took {run.seconds:.1f}s"


def test_up_to_date_check_needs_no_torch(tiny_xlmr):
    import subprocess
    import sys

    from conftest import CONVERT_DIR

    code = (
        "import sys; from embbench_convert.cli import main; rc = main(sys.argv[1:]); "
        "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(rc)"
    )
    p = subprocess.run(
        [sys.executable, "-c", code, "convert", "--model", "tiny-xlmr", "--models-file", str(MODELS_FILE),
         "--out", str(tiny_xlmr), "--fp16", "--corpus-dir", str(CORPUS_DIR)],
        capture_output=True, text=True, env={"PYTHONPATH": str(CONVERT_DIR), "PATH": "/usr/bin:/bin"},
    )
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize(
    "change", ["edit_file", "drop_fp16", "delete_file", "delete_lines", "older_payloads", "other_bodies"]
)
def test_up_to_date_check_notices_changes(tiny_xlmr, tmp_path, change):
    from embbench_convert.config import load_entry
    from embbench_convert.convert import conversion_inputs, required_files
    from embbench_convert.manifest import up_to_date_reason, write_json

    copy = tmp_path / "tiny-xlmr"
    shutil.copytree(tiny_xlmr, copy)
    entry = load_entry(MODELS_FILE, "tiny-xlmr")
    fp16 = True
    assert up_to_date_reason(copy, conversion_inputs(entry, True, CORPUS_DIR), required_files(True)) is None
    if change == "edit_file":
        with open(copy / "onnx" / "model.onnx", "ab") as f:
            f.write(b"\0")
    elif change == "delete_file":
        (copy / "payloads" / "seq32_b1.json").unlink()
    elif change == "delete_lines":
        (copy / "payloads" / "seq32_b1.jsonl").unlink()
    elif change == "older_payloads":  # a folder converted before payloads had .jsonl files
        manifest = json.loads((copy / "manifest.json").read_text())
        del manifest["inputs"]["payloads"]
        write_json(copy / "manifest.json", manifest)
    elif change == "drop_fp16":
        fp16 = False
    bodies = 8 if change == "other_bodies" else 64
    reason = up_to_date_reason(copy, conversion_inputs(entry, fp16, CORPUS_DIR, bodies), required_files(fp16))
    assert reason is not None
    assert {"edit_file": "model.onnx", "delete_file": "seq32_b1.json", "drop_fp16": "fp16",
            "delete_lines": "seq32_b1.jsonl", "older_payloads": "payloads", "other_bodies": "payloads"}[change] in reason


def test_parity_failure_exits_1_with_figures_and_leaves_no_folder(tmp_path, monkeypatch):
    """A graph that ignores the attention mask (the known export trap) must fail the gate."""
    import torch

    from embbench_convert import export
    from embbench_convert.cli import main

    real = export.make_wrapper

    def mask_ignoring_wrapper(*args, **kwargs):
        inner = real(*args, **kwargs)

        class IgnoresMask(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = inner

            def forward(self, input_ids, attention_mask):
                return self.inner(input_ids, torch.ones_like(attention_mask))

        return IgnoresMask().eval()

    monkeypatch.setattr(export, "make_wrapper", mask_ignoring_wrapper)
    out = tmp_path / "tiny-xlmr"
    rc = main(["convert", "--model", "tiny-xlmr", "--models-file", str(MODELS_FILE), "--out", str(out),
               "--corpus-dir", str(CORPUS_DIR)])
    assert rc == 1
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "model, message",
    [("no-such-model", "Unknown model 'no-such-model'"), ("siglip", "supports only text_embedding")],
)
def test_config_errors_exit_2_with_one_clear_line(tmp_path, model, message):
    run = convert(model, tmp_path / model)
    assert run.returncode == 2
    assert message in run.stderr
    assert run.summary["status"] == "error" and message in run.summary["error"]
    assert not (tmp_path / model).exists()
