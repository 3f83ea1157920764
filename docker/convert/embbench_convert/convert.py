"""`convert`: source -> pytorch/ -> reference -> onnx/ + openvino/ -> parity gate -> payloads -> manifest."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .config import ModelEntry
from .corpus import corpus_sha256, count_tokens
from .errors import ConfigError, ParityError
from .export import OPSET  # export.py imports torch only inside its functions
from .manifest import (
    MANIFEST,
    MODEL_JSON,
    SCHEMA,
    converter_sha256,
    hash_tree,
    read_manifest,
    staged,
    tool_versions,
    up_to_date_reason,
    write_json,
)
from .payloads import DEFAULT_BODIES, PAYLOADS_FORMAT
from .progress import elapsed, log

REQUIRED_FILES = [
    MODEL_JSON,
    "pytorch/config.json",
    "pytorch/tokenizer.json",
    "onnx/model.onnx",
    "openvino/model.xml",
    "openvino/model.bin",
    "reference/embeddings.json",
    "payloads/index.json",
]


def conversion_inputs(entry: ModelEntry, fp16: bool, corpus_dir: Path, bodies: int = DEFAULT_BODIES) -> dict:
    """Everything the output depends on; equal inputs and intact files mean the output is up to date."""
    extra = (entry.pypi_package,) if entry.source == "pypi" else ()
    inputs = {
        "model": {"id": entry.id, **entry.raw},
        "converter_sha256": converter_sha256(),
        "tools": tool_versions(extra),
        "corpus_sha256": corpus_sha256(corpus_dir),
        "fp16": fp16,
        "opset": OPSET,
        "payloads": {"format": PAYLOADS_FORMAT, "bodies": bodies},
    }
    if entry.source == "embedded":
        from .tiny import SEED

        inputs["seed"] = SEED
    return inputs


def model_json(entry: ModelEntry, dense_paths: list[str], ort_graph: str | None = None) -> dict:
    """embbench_model.json (docker/CONTRACT.md, "Model folder"); `dense_paths` are the Dense module folders
    in order, `ort_graph` names the fused graph ONNX Runtime servers load instead of onnx/model.onnx."""
    if len(dense_paths) != len(entry.dense):
        raise ConfigError(f"{entry.id}: {len(entry.dense)} Dense layers in models.yaml but {len(dense_paths)} module folders")
    facts = {
        "name": entry.id,
        "architecture": entry.architecture,
        "attention": entry.attention,
        "pooling": entry.pooling,
        "dense": [{**spec.as_json(), "path": path} for spec, path in zip(entry.dense, dense_paths)],
        "normalize": entry.normalize,
        "max_seq_length": entry.max_seq_length,
        "embedding_dim": entry.embedding_dim,
        "prompts": dict(entry.prompts),
        "dimensions": dict(entry.dimensions),
    }
    if ort_graph is not None:
        facts["ort_graph"] = ort_graph
    return facts


def check_model_config(entry: ModelEntry, pytorch_dir: Path) -> None:
    """The HF config must agree with models.yaml on the width, the attention and the context length."""
    cfg = json.loads((pytorch_dir / "config.json").read_text(encoding="utf-8"))
    hidden = cfg.get("hidden_size")
    if entry.dense and hidden != entry.dense[0].in_features:
        raise ConfigError(
            f"models.yaml models.{entry.id}.dense[0].in is {entry.dense[0].in_features} but its config.json has "
            f"hidden_size {hidden}"
        )
    if not entry.dense and hidden != entry.embedding_dim:
        raise ConfigError(
            f"models.yaml says embedding_dim {entry.embedding_dim} for '{entry.id}' but its config.json has hidden_size {hidden}"
        )
    if entry.architecture == "gemma3":
        configured = "bidirectional" if cfg.get("use_bidirectional_attention") else "causal"
        if configured != entry.attention:
            raise ConfigError(
                f"models.yaml models.{entry.id}.attention is '{entry.attention}' but its config.json has "
                f"use_bidirectional_attention {json.dumps(bool(cfg.get('use_bidirectional_attention')))} ({configured})"
            )
    positions = cfg.get("max_position_embeddings")
    usable = positions - 2 if entry.architecture == "xlm-roberta" and positions else positions
    if usable is not None and entry.max_seq_length > usable:
        raise ConfigError(
            f"models.yaml says max_seq_length {entry.max_seq_length} for '{entry.id}' but the model has "
            f"{usable} positions"
        )


def required_files(fp16: bool) -> list[str]:
    files = list(REQUIRED_FILES)
    if fp16:
        files += ["openvino_fp16/model.xml", "openvino_fp16/model.bin"]
    return files


def convert(
    entry: ModelEntry, out: Path, corpus_dir: Path, fp16: bool = False, force: bool = False, bodies: int = DEFAULT_BODIES
) -> dict:
    """Converts `entry` into `out`, or reuses `out` when it is up to date; returns the summary.

    `bodies` is the number of distinct request bodies in each payloads/*.jsonl file.
    """
    inputs = conversion_inputs(entry, fp16, corpus_dir, bodies)
    if not force:
        reason = up_to_date_reason(out, inputs, required_files(fp16))
        if reason is None:
            log("up to date", f"'{out}' matches its manifest (inputs and file hashes)")
            manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
            return {"status": "up to date", "model": entry.id, "out": str(out), "seconds": round(elapsed(), 2),
                    "parity": _parity_summary(manifest["parity"])}
        if (out / MANIFEST).exists():
            log("rebuild", reason)

    with staged(out) as tmp:
        summary = _build(entry, tmp, corpus_dir, fp16, inputs, bodies)
    log("done", f"wrote '{out}'")
    summary.update({"status": "converted", "out": str(out), "seconds": round(elapsed(), 2)})
    return summary


def _parity_summary(parity: dict) -> dict:
    return {k: {"max_abs_diff": v.get("max_abs_diff"), "min_cosine": v.get("min_cosine"), "passed": v.get("passed")}
            for k, v in parity.items()}


def _build(entry: ModelEntry, root: Path, corpus_dir: Path, fp16: bool, inputs: dict, bodies: int) -> dict:
    from . import export, parity
    from .corpus import load_sentences, parity_texts
    from .payloads import DEFAULT_BATCH_SIZES, DEFAULT_SEQ_LENS, load_plain_tokenizer, write_payloads
    from .reference import Batch, align_tokenizer_json, write_reference
    from .sources import fetch_source, normalize_tokenizer_json, pad_token

    timings: dict[str, float] = {}
    t0 = time.monotonic()

    def lap(name: str) -> None:
        nonlocal t0
        now = time.monotonic()
        timings[name] = round(now - t0, 2)
        t0 = now

    from .modules import check_pipeline, dense_paths, read_pipeline

    pytorch_dir = root / "pytorch"
    source = fetch_source(entry, corpus_dir, pytorch_dir)
    normalize_tokenizer_json(pytorch_dir / "tokenizer.json")
    check_model_config(entry, pytorch_dir)
    pipeline = read_pipeline(pytorch_dir)
    check_pipeline(entry, pipeline, "pytorch/")
    dense_at = dense_paths(pipeline)
    write_json(root / MODEL_JSON, model_json(entry, dense_at))
    lap("source")

    import torch
    import transformers

    transformers.logging.set_verbosity_error()  # e.g. "pooler weights newly initialized": unused here
    torch.set_num_threads(parity.num_threads())
    aligned = align_tokenizer_json(pytorch_dir)
    if aligned:
        log("tokenizer", f"warning: {aligned}")
    sentences = load_sentences(corpus_dir)
    plain = load_plain_tokenizer(pytorch_dir / "tokenizer.json")
    texts = parity_texts(plain, sentences, entry.max_seq_length)
    tok = parity.load_tokenizer(pytorch_dir / "tokenizer.json", entry.max_seq_length, pad_token(pytorch_dir))
    ids, mask = parity.encode_batch(tok, texts)
    counts = [int(c) for c in mask.sum(axis=1)]
    full_counts = [count_tokens(plain, t) for t in texts]
    log("reference", f"{len(texts)} texts of {min(counts)}..{max(counts)} tokens, padded to {ids.shape[1]}")
    dense = export.load_dense(root, dense_at, entry.dense)
    reference = write_reference(
        entry, root, Batch(texts, ids, mask), counts, [f > c for f, c in zip(full_counts, counts)], dense,
        lambda batch_texts, add_special_tokens=True: parity.encode_batch(tok, batch_texts, add_special_tokens),
    )
    lap("reference")

    log("onnx", f"exporting with torch.onnx (TorchScript exporter, opset {OPSET}) through the padded-batch wrapper")
    wrapper = export.make_wrapper(export.load_hf_model(pytorch_dir, "eager"), entry.architecture, entry.pooling, dense)
    example = [1, 7] if len(texts) > 7 else [0, len(texts) - 1]
    ex_len = int(mask[example].sum(axis=1).max())
    onnx_path = root / "onnx" / "model.onnx"
    export.export_onnx(wrapper, torch.from_numpy(ids[example, :ex_len]), torch.from_numpy(mask[example, :ex_len]), onnx_path)
    del wrapper
    lap("onnx")

    ort_graph = _fuse(entry, root, onnx_path, pytorch_dir)
    if ort_graph["file"] is not None:
        # The fused graph passes the same gate or is not served: a failure leaves model.onnx to the
        # ONNX Runtime servers (no ort_graph in embbench_model.json) instead of failing the model.
        try:
            fused_out = parity.run_onnxruntime(root / ort_graph["file"], ids, mask)
        except Exception as e:  # noqa: BLE001 -- any ONNX Runtime failure means: do not serve it
            _drop_fused(root, ort_graph, f"ONNX Runtime cannot run it: {e}")
        else:
            fused_figures = parity.compare(reference, fused_out, parity.FP32_THRESHOLDS)
            log("parity", parity.format_figures("onnxruntime_fused", fused_figures))
            ort_graph["parity"] = fused_figures
            if not fused_figures["passed"]:
                _drop_fused(root, ort_graph, "failed the parity gate: "
                            + parity.format_figures("onnxruntime_fused", fused_figures))
    lap("fuse")

    # OpenVINO compiles both graphs to nearly the same kernels (the fused one packs the Q, K and V
    # projections into one); measured here it ran the fused graph as fast or a few % faster (README).
    ov_source = root / ort_graph["file"] if ort_graph["file"] is not None else onnx_path
    log("openvino", f"converting onnx/{ov_source.name} to OpenVINO IR (fp32" + (" and fp16" if fp16 else "") + ")")
    export.export_openvino(ov_source, root / "openvino", fp16=False)
    if fp16:
        export.export_openvino(ov_source, root / "openvino_fp16", fp16=True)
    lap("openvino")

    log("parity", "ONNX Runtime and OpenVINO against the reference")
    results = {
        "onnxruntime": parity.compare(reference, parity.run_onnxruntime(onnx_path, ids, mask), parity.FP32_THRESHOLDS),
        "openvino": parity.compare(reference, parity.run_openvino(root / "openvino" / "model.xml", ids, mask), parity.FP32_THRESHOLDS),
    }
    if fp16:
        results["openvino_fp16"] = parity.compare(
            reference, parity.run_openvino(root / "openvino_fp16" / "model.xml", ids, mask), parity.FP16_THRESHOLDS
        )
    for name, figures in results.items():
        log("parity", parity.format_figures(name, figures))
    if ort_graph["file"] is not None:
        results["onnxruntime_fused"] = ort_graph["parity"]
    failed = [n for n, f in results.items() if not f["passed"]]
    if failed:
        raise ParityError(
            f"Parity gate failed for {entry.id}: "
            + "; ".join(parity.format_figures(n, results[n]) for n in failed)
        )
    lap("parity")
    write_json(root / MODEL_JSON, model_json(entry, dense_at, ort_graph["file"]))

    log("payloads", f"seq lens {list(DEFAULT_SEQ_LENS)} x batch sizes {list(DEFAULT_BATCH_SIZES)}, {bodies} bodies each")
    write_payloads(entry.id, root, root / "payloads", corpus_dir, list(DEFAULT_SEQ_LENS), list(DEFAULT_BATCH_SIZES),
                   entry.max_seq_length, bodies, entry.prompts)
    lap("payloads")

    precisions = {"onnx": "fp32", "openvino": "fp32"}
    if ort_graph["file"] is not None:
        precisions["onnx_fused"] = "fp32"
    if fp16:
        precisions["openvino_fp16"] = "fp16"
    manifest = {
        "schema": SCHEMA,
        "model": entry.id,
        "source": source,
        "opset": OPSET,
        "precisions": precisions,
        "tool_versions": inputs["tools"],
        "export": "torch.onnx.export(dynamo=False) of a wrapper with an explicit additive attention mask, eager attention, traced on a padded batch",
        "parity_batch": {"texts": len(texts), "token_counts": counts, "padded_to": int(ids.shape[1])},
        "parity": results,
        "ort_graph": ort_graph,
        "openvino_source": f"onnx/{ov_source.name}",
        "inputs": inputs,
        "files": hash_tree(root),
    }
    write_json(root / MANIFEST, manifest)
    return {"model": entry.id, "source": source, "timings": timings, "parity": _parity_summary(results),
            "ort_graph": ort_graph["file"], "fused_ops": ort_graph["fused_ops"]}


def _fuse(entry: ModelEntry, root: Path, onnx_path: Path, pytorch_dir: Path) -> dict:
    """Writes onnx/model_fused.onnx for encoders; returns the manifest's "ort_graph" record.

    "file" is the graph's path in the folder, or None with "reason" when there is none to serve.
    The parity gate still has to pass it (see _build).
    """
    from . import fused

    record: dict = {"file": None, "optimizer": None, "fused_ops": {}, "parity": None, "reason": None}
    if entry.architecture not in fused.FUSED_ARCHITECTURES:
        record["reason"] = (f"{entry.architecture}: ONNX Runtime's transformer optimizer fuses BERT-style "
                            "encoders only; ONNX Runtime serves onnx/model.onnx")
        log("fuse", record["reason"])
        return record
    cfg = json.loads((pytorch_dir / "config.json").read_text(encoding="utf-8"))
    heads, hidden = int(cfg["num_attention_heads"]), int(cfg["hidden_size"])
    record["optimizer"] = fused.optimizer_call(heads, hidden)
    log("fuse", f"ONNX Runtime transformer optimizer (bert fusions, {heads} heads, hidden {hidden})")
    out = root / fused.ORT_GRAPH
    record["file"] = fused.ORT_GRAPH
    try:
        counts = fused.fuse(onnx_path, out, heads, hidden)
    except Exception as e:  # noqa: BLE001 -- an optimizer failure leaves model.onnx to ONNX Runtime
        _drop_fused(root, record, f"the optimizer failed: {type(e).__name__}: {e}")
        return record
    record["fused_ops"] = counts
    log("fuse", "fused ops: " + (", ".join(f"{op} {n}" for op, n in counts.items()) or "none"))
    problems = fused.signature_problems(onnx_path, out)
    if not fused.has_attention(counts):
        problems.insert(0, f"no {' or '.join(fused.ATTENTION_OPS)} node (the attention pattern was not recognised)")
    if problems:
        _drop_fused(root, record, "; ".join(problems))
    return record


def _drop_fused(root: Path, record: dict, reason: str) -> None:
    """Removes the fused graph (and its external data) so no server can load it, and says why."""
    path = root / record["file"]
    for p in (path, path.with_name(path.name + ".data")):
        p.unlink(missing_ok=True)
    record["file"] = None
    record["reason"] = "not served: " + reason
    log("fuse", f"warning: onnx/model_fused.onnx {record['reason']}; ONNX Runtime servers load onnx/model.onnx")


def record_payload_hashes(model_dir: Path) -> None:
    """Re-records the payloads/ hashes after `payloads` rewrote that folder; other entries stay as they were."""
    manifest = read_manifest(model_dir)
    if manifest is None:
        return
    files = {k: v for k, v in manifest.get("files", {}).items() if not k.startswith("payloads/")}
    files.update({f"payloads/{k}": v for k, v in hash_tree(model_dir / "payloads").items()})
    manifest["files"] = dict(sorted(files.items()))
    write_json(model_dir / MANIFEST, manifest)
