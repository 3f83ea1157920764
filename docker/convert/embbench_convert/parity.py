"""The parity gate: converted formats against the PyTorch reference on one padded multilingual batch."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import ParityError

# fp32 formats must match the reference this closely on every row.
FP32_THRESHOLDS = {"max_abs_diff": 1e-4, "min_cosine": 0.9999}
# fp16-compressed weights: looser, still far from a broken graph (which lands near cosine 0.9 or below).
FP16_THRESHOLDS = {"max_abs_diff": 1e-2, "min_cosine": 0.999}


def num_threads() -> int:
    """The CPUs this process may use: the container's cpuset, not the host's core count."""
    return max(1, len(os.sched_getaffinity(0)))


def load_tokenizer(tokenizer_json: Path, max_seq_length: int, pad_token: str):
    """tokenizer.json configured as every server is: truncate at max_seq_length, pad right to the longest."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    pad_id = tok.token_to_id(pad_token)
    if pad_id is None:
        raise ParityError(f"Pad token '{pad_token}' is not in '{tokenizer_json}'")
    tok.enable_truncation(max_length=max_seq_length)
    tok.enable_padding(pad_id=pad_id, pad_token=pad_token, direction="right")
    return tok


def encode_batch(tok, texts: list[str], add_special_tokens: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """ids and attention_mask as a server builds them (truncated, right-padded to the longest row)."""
    encs = tok.encode_batch(texts, add_special_tokens=add_special_tokens)
    ids = np.array([e.ids for e in encs], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
    return ids, mask


def torch_reference(model, pooling: str, ids: np.ndarray, mask: np.ndarray, dense=()) -> np.ndarray:
    """Embeddings from the HF model's own forward (default attention) plus pooling, Dense layers and L2 norm."""
    import torch

    from .export import pool

    with torch.no_grad():
        t_ids = torch.from_numpy(ids)
        t_mask = torch.from_numpy(mask)
        out = model(input_ids=t_ids, attention_mask=t_mask)
        return pool(out.last_hidden_state, t_mask, pooling, dense).float().numpy()


def run_onnxruntime(onnx_path: Path, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = num_threads()
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"])
    return sess.run(["sentence_embedding"], {"input_ids": ids, "attention_mask": mask})[0]


def run_openvino(xml_path: Path, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    import openvino as ov

    core = ov.Core()
    # f32 explicitly: on CPUs with bf16 support OpenVINO would otherwise compute in bf16.
    compiled = core.compile_model(
        str(xml_path), "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": num_threads()}
    )
    result = compiled({"input_ids": ids, "attention_mask": mask})
    return np.asarray(result[compiled.output("sentence_embedding")])


def compare(reference: np.ndarray, candidate: np.ndarray, thresholds: dict[str, float]) -> dict:
    """Per-row figures and whether every row is within the thresholds."""
    if candidate.shape != reference.shape:
        return {
            "passed": False,
            "error": f"shape {list(candidate.shape)} differs from the reference {list(reference.shape)}",
            "thresholds": thresholds,
        }
    diff = np.abs(candidate.astype(np.float64) - reference.astype(np.float64)).max(axis=1)
    ref = reference.astype(np.float64)
    cand = candidate.astype(np.float64)
    cos = (ref * cand).sum(axis=1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1))
    figures = {
        "max_abs_diff": float(diff.max()),
        "min_cosine": float(cos.min()),
        "worst_row": int(np.argmin(cos)),
        "thresholds": thresholds,
    }
    finite = bool(np.isfinite(candidate).all())
    figures["passed"] = finite and figures["max_abs_diff"] <= thresholds["max_abs_diff"] and figures["min_cosine"] >= thresholds["min_cosine"]
    if not finite:
        figures["error"] = "non-finite values in the output"
    return figures


def format_figures(name: str, figures: dict) -> str:
    if "error" in figures and "max_abs_diff" not in figures:
        return f"{name}: {figures['error']}"
    t = figures["thresholds"]
    return (
        f"{name}: max |diff| {figures['max_abs_diff']:.3g} (limit {t['max_abs_diff']:g}), "
        f"min cosine {figures['min_cosine']:.7f} (limit {t['min_cosine']:g}), worst row {figures['worst_row']}"
    )
