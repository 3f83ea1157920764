"""PyTorch eager on CPU: MODEL_DIR/pytorch through transformers' AutoModel, pooled as
embbench_model.json says, then its `dense` layers, then L2-normalised.

The model is the authors' own code: transformers builds the attention masks from the model's
config.json, which load() checks against embbench_model.json's `attention` (Qwen3 causal; Gemma3
bidirectional when use_bidirectional_attention is true: full layers see every real token, sliding
layers the real tokens with |q - k| < sliding_window, the window transformers' config rewrote to
configured // 2 + 1, as convert's exported graph does). The Dense modules come from each module
folder's model.safetensors (linear.weight [out, in], linear.bias when `bias`).

Tuned per PyTorch's CPU performance guide: inference_mode, set_num_threads(NUM_THREADS), one
inter-op thread, and the OpenMP team bound to the cpuset's cores: the server sets OMP_PLACES=cores
and OMP_PROC_BIND=close before torch is imported (options.set_native_thread_env) unless the user set
either; GNU OpenMP reads the places from the process's affinity mask, the cpuset.

torch is the runtime (imported with this module, threads set in init_runtime); transformers is
the model's code, imported in load() with the model, so runtime_ready marks torch alone.
"""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np
import torch

from ..config import ConfigError, ModelSpec
from ..text_tokenizer import TokenBatch
from .base import Backend
from ..options import SET_BY_SERVER


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """[batch, seq, dim] -> [batch, dim]. Rows are right-padded, so a row's last real token sits
    at index (its mask's sum - 1)."""
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "mean":
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    if pooling == "last_token":
        last = attention_mask.sum(dim=1) - 1
        return hidden[torch.arange(hidden.shape[0]), last]
    raise ValueError(f"unknown pooling {pooling!r}")


def apply_dense(pooled: torch.Tensor, layers: list[tuple[torch.Tensor, torch.Tensor | None]]) -> torch.Tensor:
    """The sentence-transformers Dense modules, in order: x · Wᵀ + b, identity activation (the only
    one config.py accepts)."""
    for weight, bias in layers:
        pooled = torch.nn.functional.linear(pooled, weight, bias)
    return pooled


def load_dense(model_dir, spec: ModelSpec) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """The weights of embbench_model.json's dense layers, checked against their declared shapes."""
    from safetensors.torch import load_file

    layers = []
    for i, layer in enumerate(spec.dense):
        path = model_dir / layer.path / "model.safetensors"
        if not path.is_file():
            raise ConfigError(f"{path} is missing: embbench_model.json's dense[{i}] names {layer.path!r}")
        tensors = load_file(str(path))
        weight = tensors.get("linear.weight")
        expected = (layer.out_features, layer.in_features)
        if weight is None or tuple(weight.shape) != expected:
            found = "no tensor linear.weight" if weight is None else f"linear.weight of shape {list(weight.shape)}"
            raise ConfigError(f"{path} holds {found}: expected [{expected[0]}, {expected[1]}] (dense[{i}]'s out, in)")
        bias = tensors.get("linear.bias")
        if layer.bias != (bias is not None):
            raise ConfigError(
                f"{path} {'lacks' if layer.bias else 'holds'} linear.bias: embbench_model.json's dense[{i}].bias "
                f"is {str(layer.bias).lower()}"
            )
        if bias is not None and tuple(bias.shape) != (layer.out_features,):
            raise ConfigError(f"{path}: linear.bias has shape {list(bias.shape)}: expected [{layer.out_features}]")
        layers.append((weight.to(torch.float32).contiguous(), None if bias is None else bias.to(torch.float32)))
    return layers


def check_model_config(config: Any, spec: ModelSpec, config_path) -> None:
    """The HF config must give the attention and width embbench_model.json states: transformers
    builds the masks from the config, so a disagreement would serve the model silently wrong."""
    bidirectional = bool(getattr(config, "use_bidirectional_attention", False))
    if spec.architecture in ("qwen3", "gemma3"):
        if spec.architecture == "qwen3" and spec.attention != "causal":
            raise ConfigError(
                f"embbench_model.json's attention is {spec.attention!r}: transformers' Qwen3 is causal only"
            )
        config_attention = "bidirectional" if bidirectional else "causal"
        if config_attention != spec.attention:
            raise ConfigError(
                f"{config_path}: use_bidirectional_attention is {str(bidirectional).lower()} ({config_attention} "
                f"attention) but embbench_model.json's attention is {spec.attention!r}"
            )
    elif spec.attention != "bidirectional":
        raise ConfigError(
            f"embbench_model.json's attention is {spec.attention!r}: a {spec.architecture} encoder is bidirectional"
        )
    width = spec.dense[0].in_features if spec.dense else spec.embedding_dim
    hidden = getattr(config, "hidden_size", None)
    if hidden != width:
        what = "dense[0].in" if spec.dense else "embedding_dim"
        raise ConfigError(f"{config_path}: hidden_size is {hidden}: expected {width}, embbench_model.json's {what}")


def config_facts(config: str) -> dict[str, str]:
    """BLAS, LAPACK, oneDNN and MKL lines of torch.__config__.show(), the build's own account."""
    facts: dict[str, str] = {}
    for line in config.splitlines():
        line = line.strip().lstrip("- ").strip()
        for key, pattern in (
            ("onednn", r"Intel\(R\) oneDNN.*?version\s+(v?[\w.]+)"),
            ("mkl", r"Intel\(R\) oneAPI Math Kernel Library Version\s+([\w.]+)"),
            ("cpu_capability", r"CPU capability usage:\s*(\S+)"),
            ("openmp", r"OpenMP\s+(\d+)"),
        ):
            m = re.search(pattern, line)
            if m and key not in facts:
                facts[key] = m.group(1)
        for key in ("BLAS_INFO", "LAPACK_INFO", "USE_MKLDNN", "USE_MKL", "USE_OPENMP", "CXX_FLAGS"):
            m = re.search(rf"\b{key}=([^,]*)", line)
            if m and key.lower() not in facts:
                facts[key.lower()] = m.group(1).strip()
    return facts


class TorchBackend(Backend):
    framework = "torch"

    def framework_version(self) -> str:
        return torch.__version__

    def init_runtime(self) -> None:
        torch.set_num_threads(self.settings.num_threads)
        # Must precede any inter-op parallel work, which is why it happens before the model loads.
        torch.set_num_interop_threads(1)

    def load(self) -> None:
        import transformers
        from transformers import AutoModel

        # The unused pooler weights of BERT-style checkpoints are expected here, not worth a warning.
        transformers.logging.set_verbosity_error()
        self.transformers_version = transformers.__version__
        path = self.settings.model_dir / "pytorch"
        if not (path / "config.json").is_file():
            raise ConfigError(f"{path / 'config.json'} is missing: run `embbench convert` for this model")
        # BERT-style models carry a pooler head we never use (pooling is embbench_model.json's).
        extra = {"add_pooling_layer": False} if self.spec.architecture in ("bert", "xlm-roberta") else {}
        self.model = AutoModel.from_pretrained(str(path), dtype=torch.float32, **extra).eval()
        check_model_config(self.model.config, self.spec, path / "config.json")
        self.dense = load_dense(self.settings.model_dir, self.spec)

    def embed(self, batch: TokenBatch) -> np.ndarray:
        # inference_mode is thread-local: enter it in the inference thread itself.
        with torch.inference_mode():
            input_ids = torch.from_numpy(batch.input_ids)
            attention_mask = torch.from_numpy(batch.attention_mask)
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            pooled = apply_dense(pool(hidden, attention_mask, self.spec.pooling), self.dense)
            if self.spec.normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            return pooled.float().numpy()

    def build_info(self) -> dict[str, Any]:
        return {
            "transformers": self.transformers_version,
            # None for a CPU-only wheel; PyPI's default wheel is built for CUDA but runs here on CPU.
            "cuda_build": torch.version.cuda,
            "wheel_index": os.environ.get("TORCH_INDEX_URL") or "pypi",
            "torch_config": config_facts(torch.__config__.show()),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "mkldnn_available": torch.backends.mkldnn.is_available(),
            "mkl_available": torch.backends.mkl.is_available(),
            "num_threads": torch.get_num_threads(),
            "openmp_env": {name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "OMP_PLACES", "OMP_PROC_BIND")},
            "openmp_env_set_by_server": sorted(SET_BY_SERVER),
            "num_interop_threads": torch.get_num_interop_threads(),
            "attn_implementation": getattr(self.model.config, "_attn_implementation", None),
            "attention": self.spec.attention,
            "sliding_window": getattr(self.model.config, "sliding_window", None),
            "dense": [f"{d.path} [{d.in_features} -> {d.out_features}]" for d in self.spec.dense],
            "inference_mode": True,
            "model_file": "pytorch/",
        }
