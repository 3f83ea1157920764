"""PyTorch eager on CPU: MODEL_DIR/pytorch through transformers' AutoModel, pooled as
embbench_model.json says, L2-normalised.

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

from ..config import ConfigError
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

    def embed(self, batch: TokenBatch) -> np.ndarray:
        # inference_mode is thread-local: enter it in the inference thread itself.
        with torch.inference_mode():
            input_ids = torch.from_numpy(batch.input_ids)
            attention_mask = torch.from_numpy(batch.attention_mask)
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            pooled = pool(hidden, attention_mask, self.spec.pooling)
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
            "inference_mode": True,
            "model_file": "pytorch/",
        }
