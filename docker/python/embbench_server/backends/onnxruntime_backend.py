"""ONNX Runtime on CPU: MODEL_DIR/onnx/model.onnx, whose graph ends in pooling and L2 norm.

Tuned per ONNX Runtime's threading guide: intra-op threads = NUM_THREADS (never the default, which
counts the host's cores, not the cpuset), one inter-op thread, sequential execution, all graph
optimisations. No thread affinity is set, so a cpuset cannot make pinning fail.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort

from ..config import ConfigError
from ..text_tokenizer import TokenBatch
from .base import Backend

OUTPUT = "sentence_embedding"


class OnnxRuntimeBackend(Backend):
    framework = "onnxruntime"

    def framework_version(self) -> str:
        return ort.__version__

    def load(self) -> None:
        path = self.settings.model_dir / "onnx" / "model.onnx"
        if not path.is_file():
            raise ConfigError(f"{path} is missing: run `embbench convert` for this model")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.settings.num_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        inputs = {i.name for i in self.session.get_inputs()}
        unknown = inputs - {"input_ids", "attention_mask", "token_type_ids"}
        if unknown or not {"input_ids", "attention_mask"} <= inputs:
            raise ConfigError(f"{path} has inputs {sorted(inputs)}: expected input_ids and attention_mask")
        if OUTPUT not in {o.name for o in self.session.get_outputs()}:
            raise ConfigError(f"{path} has no output {OUTPUT!r}")
        self.wants_token_type_ids = "token_type_ids" in inputs

    def embed(self, batch: TokenBatch) -> np.ndarray:
        feeds = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
        if self.wants_token_type_ids:
            feeds["token_type_ids"] = np.zeros_like(batch.input_ids)
        return self.session.run([OUTPUT], feeds)[0]

    def build_info(self) -> dict[str, Any]:
        return {
            "onnxruntime_build": ort.get_build_info(),
            "providers": self.session.get_providers(),
            "intra_op_num_threads": self.settings.num_threads,
            "inter_op_num_threads": 1,
            "execution_mode": "sequential",
            "graph_optimization_level": "ORT_ENABLE_ALL",
            "model_file": "onnx/model.onnx",
        }
