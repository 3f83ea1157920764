"""The graph for ONNX Runtime: model.onnx with ONNX Runtime's transformer fusions applied.

ONNX Runtime's own session optimiser (ORT_ENABLE_ALL) does not fuse the attention of the exported
encoder graph: it keeps MatMul -> Add(mask) -> Softmax -> MatMul with four reshapes and four
transposes per layer. The transformer optimizer that ships inside the onnxruntime wheel
(`onnxruntime.transformers.optimizer`) rewrites each layer into a few contrib ops (com.microsoft):
Attention (one packed QKV GEMM, the scaled dot product and the mask in one kernel),
SkipLayerNormalization (residual add + LayerNorm), BiasGelu, and for BERT EmbedLayerNormalization.
It recognises the export's additive mask ((1 - mask) * finfo(float32).min) as is and carries that
value into the Attention node's mask_filter_value.

The mask stays the raw 2-D attention_mask (AttentionMaskFormat.AttentionMask): the Attention node
masks exactly the keys model.onnx masks, for any 0/1 pattern. The optimizer's default for BERT
(MaskIndexEnd) turns the mask into per-row lengths, which is only right for right-padded rows.

Only encoders (BERT, XLM-R: model_type "bert") are fused; the decoders keep model.onnx.
"""

from __future__ import annotations

from pathlib import Path

from .export import ONNX_INPUTS, ONNX_OUTPUT

ORT_GRAPH = "onnx/model_fused.onnx"
FUSED_ARCHITECTURES = ("bert", "xlm-roberta")
# The contrib ops that carry attention: a graph without one of them is not worth serving.
ATTENTION_OPS = ("Attention", "MultiHeadAttention")
CONTRIB_DOMAIN = "com.microsoft"


def optimizer_call(num_heads: int, hidden_size: int) -> str:
    """How the fused graph is made, for the manifest."""
    return (
        f"onnxruntime.transformers.optimizer.optimize_model(model_type='bert', num_heads={num_heads}, "
        f"hidden_size={hidden_size}, opt_level=0, use_gpu=False), FusionOptions('bert') with the raw "
        "attention mask (AttentionMaskFormat.AttentionMask)"
    )


def fuse(onnx_path: Path, out_path: Path, num_heads: int, hidden_size: int) -> dict[str, int]:
    """Writes the fused version of `onnx_path` to `out_path`; returns its contrib op counts.

    opt_level=0: the optimizer's Python fusions only, no ONNX Runtime session pass, so the file
    holds no kernel choices for this CPU and is the same on every machine (servers run
    ORT_ENABLE_ALL on it anyway). Weights stay where model.onnx keeps them: inline, or one
    external file `<name>.data` for large models.
    """
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.use_raw_attention_mask(True)
    model = optimize_model(
        str(onnx_path),
        model_type="bert",
        num_heads=num_heads,
        hidden_size=hidden_size,
        opt_level=0,
        use_gpu=False,
        optimization_options=options,
    )
    external = (onnx_path.parent / (onnx_path.name + ".data")).exists()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    model.save_model_to_file(str(out_path), use_external_data_format=external, all_tensors_to_one_file=True)
    return fused_op_counts(out_path)


def fused_op_counts(path: Path) -> dict[str, int]:
    """How many nodes of each contrib (com.microsoft) op type the graph holds, sorted by name."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    counts: dict[str, int] = {}
    for node in graph.node:
        if node.domain == CONTRIB_DOMAIN:
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def signature_problems(plain: Path, fused: Path) -> list[str]:
    """What keeps `fused` from standing in for `plain`: other inputs or outputs, or non-fp32 floats."""
    import onnx

    def io(path: Path):
        g = onnx.load(str(path), load_external_data=False).graph
        def describe(values):
            return [(v.name, v.type.tensor_type.elem_type,
                     [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]) for v in values]
        return g, describe(g.input), describe(g.output)

    problems = []
    _, plain_in, plain_out = io(plain)
    graph, fused_in, fused_out = io(fused)
    if fused_in != plain_in:
        problems.append(f"inputs {fused_in} differ from model.onnx's {plain_in}")
    if fused_out != plain_out:
        problems.append(f"outputs {fused_out} differ from model.onnx's {plain_out}")
    if [i[0] for i in fused_in] != list(ONNX_INPUTS) or [o[0] for o in fused_out] != [ONNX_OUTPUT]:
        problems.append("the graph does not have the contract's input and output names")
    low = sorted({t.name for t in graph.initializer
                  if t.data_type in (onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16)})
    if low:
        problems.append(f"{len(low)} initializers are not fp32 (e.g. {low[0]})")
    return problems


def has_attention(counts: dict[str, int]) -> bool:
    return any(counts.get(op, 0) > 0 for op in ATTENTION_OPS)

