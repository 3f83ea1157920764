"""The exported graph: a wrapper around the HF model that pools and normalises, and its export.

Why a wrapper instead of exporting the HF model: the HF forward builds its attention mask with
data-dependent shortcuts (for example "the mask is all ones, drop it" before SDPA). A trace keeps
whichever branch the example input took, so a graph traced on an unpadded batch silently ignores
padding later. The wrapper builds the additive mask itself from attention_mask with plain tensor
ops, runs the model's own layers with eager attention, and is traced on a padded batch; the parity
gate then proves the graph on a padded batch again.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ConvertError

OPSET = 17
ONNX_INPUTS = ("input_ids", "attention_mask")
ONNX_OUTPUT = "sentence_embedding"
# Above this size a protobuf cannot hold the weights: they go to one external data file.
EXTERNAL_DATA_BYTES = 1_800_000_000


def load_hf_model(model_dir: Path, attn_implementation: str):
    """The HF base model (no task head) in float32, eval mode."""
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(
        str(model_dir), attn_implementation=attn_implementation, dtype=torch.float32
    )
    return model.eval()


def pool_tokens(hidden, attention_mask, pooling: str):
    """Pools [batch, seq, dim] hidden states into [batch, dim] (cls, mean over real tokens, or the last
    real token of right-padded rows)."""
    import torch

    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "mean":
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)
    if pooling == "last_token":
        # Right padding: the last real token sits at length - 1.
        last = attention_mask.to(torch.int64).sum(dim=1) - 1
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise ConvertError(f"Unknown pooling '{pooling}'")


def head(pooled, dense=()):
    """The pipeline after pooling: the Dense layers in order (identity activation), then the L2 norm."""
    for layer in dense:
        pooled = layer(pooled)
    norm = pooled.norm(p=2, dim=-1, keepdim=True).clamp(min=1e-12)
    return pooled / norm


def pool(hidden, attention_mask, pooling: str, dense=()):
    """Pooling, Dense layers and L2 norm: [batch, seq, dim] hidden states to sentence embeddings.

    Shared by the exported wrapper and the mistakes in the reference, so both follow one definition.
    """
    return head(pool_tokens(hidden, attention_mask, pooling), dense)


def load_dense(model_root: Path, paths: list[str], specs) -> list:
    """The Dense layers as torch Linear modules, from each folder's model.safetensors (linear.weight [out, in],
    linear.bias when the spec has a bias). `paths` are relative to the model folder ("pytorch/2_Dense")."""
    import torch
    from safetensors.torch import load_file

    layers = []
    for path, spec in zip(paths, specs):
        tensors = load_file(str(model_root / path / "model.safetensors"))
        layer = torch.nn.Linear(spec.in_features, spec.out_features, bias=spec.bias)
        with torch.no_grad():
            layer.weight.copy_(tensors["linear.weight"].to(torch.float32))
            if spec.bias:
                layer.bias.copy_(tensors["linear.bias"].to(torch.float32))
        layers.append(layer.eval())
    return layers


def make_wrapper(model, architecture: str, pooling: str, dense=(), attention: str | None = None):
    """A torch module (input_ids, attention_mask) -> sentence_embedding for `model`: the model, pooling,
    the Dense layers `dense` (torch Linear modules, in order) and the L2 norm.

    `attention` overrides a decoder's configured attention ("causal" / "bidirectional"); the reference's
    mistakes use it, the export never does.
    """
    import torch

    dense_layers = torch.nn.ModuleList(dense)

    class EncoderEmbedder(torch.nn.Module):
        """BERT / XLM-R: embeddings, then the encoder layers with an explicit additive mask."""

        def __init__(self):
            super().__init__()
            self.model = model
            self.dense = dense_layers

        def forward(self, input_ids, attention_mask):
            hidden = self.model.embeddings(input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids))
            keep = attention_mask[:, None, None, :].to(hidden.dtype)
            additive = (1.0 - keep) * torch.finfo(hidden.dtype).min
            hidden = self.model.encoder(hidden, attention_mask=additive)[0]
            return pool(hidden, attention_mask, pooling, self.dense)

    class DecoderEmbedder(torch.nn.Module):
        """Qwen3 / Gemma3: the model's forward with prepared 4D masks, one per layer type.

        full_attention:    padding, and causal unless the model is bidirectional;
        sliding_attention: padding and |q - k| < window (bidirectional), or causal and q - k < window.
        """

        def __init__(self, causal: bool, window: int | None):
            super().__init__()
            self.model = model
            self.dense = dense_layers
            self.causal = causal
            self.window = window

        def forward(self, input_ids, attention_mask):
            seq = input_ids.shape[1]
            keys = attention_mask[:, None, None, :].to(torch.bool)
            pos = torch.arange(seq, device=input_ids.device)
            q = pos[None, None, :, None]
            k = pos[None, None, None, :]
            full = keys & (k <= q) if self.causal else keys.expand(-1, -1, seq, -1)
            masks = {"full_attention": full}
            if self.window is not None:
                near = (q - k).abs() < self.window if not self.causal else (k <= q) & (q - k < self.window)
                masks["sliding_attention"] = keys & near
            else:
                masks["sliding_attention"] = full
            zero = torch.zeros((), dtype=torch.float32)
            lowest = torch.finfo(torch.float32).min
            additive = {name: torch.where(m, zero, lowest) for name, m in masks.items()}
            position_ids = pos.unsqueeze(0).expand_as(input_ids)
            out = self.model(input_ids=input_ids, attention_mask=additive, position_ids=position_ids, use_cache=False)
            return pool(out.last_hidden_state, attention_mask, pooling, self.dense)

    if architecture in ("bert", "xlm-roberta"):
        return EncoderEmbedder().eval()
    if architecture in ("qwen3", "gemma3"):
        cfg = model.config
        layer_types = getattr(cfg, "layer_types", None) or ["full_attention"]
        window = getattr(cfg, "sliding_window", None) if "sliding_attention" in layer_types else None
        bidirectional = bool(getattr(cfg, "use_bidirectional_attention", False))
        if attention is not None:
            bidirectional = attention == "bidirectional"
        return DecoderEmbedder(causal=not bidirectional, window=window).eval()
    raise ConvertError(f"No export wrapper for architecture '{architecture}'")


def export_onnx(wrapper, example_ids, example_mask, path: Path) -> None:
    """Exports `wrapper` with the TorchScript exporter (dynamo=False) and dynamic batch/sequence axes."""
    import onnx
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {"batch": 0, "sequence": 1}
    with torch.no_grad():
        torch.onnx.export(
            wrapper,
            (example_ids, example_mask),
            str(path),
            input_names=list(ONNX_INPUTS),
            output_names=[ONNX_OUTPUT],
            dynamic_axes={
                "input_ids": {v: k for k, v in axes.items()},
                "attention_mask": {v: k for k, v in axes.items()},
                ONNX_OUTPUT: {0: "batch"},
            },
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    model = onnx.load(str(path))
    weights = sum(len(t.raw_data) for t in model.graph.initializer)
    if weights > EXTERNAL_DATA_BYTES:
        for extra in path.parent.iterdir():
            if extra != path:
                extra.unlink()
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=path.name + ".data",
            size_threshold=1024,
        )
    onnx.checker.check_model(str(path))


def export_openvino(onnx_path: Path, out_dir: Path, fp16: bool) -> None:
    """Converts the ONNX graph to OpenVINO IR (model.xml + model.bin), fp32 or fp16-compressed weights."""
    import openvino as ov

    out_dir.mkdir(parents=True, exist_ok=True)
    # read_model (not convert_model) records no conversion parameters such as the input path,
    # which would make the IR differ from run to run.
    model = ov.Core().read_model(str(onnx_path))
    ov.save_model(model, str(out_dir / "model.xml"), compress_to_fp16=fp16)
