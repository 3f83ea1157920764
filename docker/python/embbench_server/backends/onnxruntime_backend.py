"""ONNX Runtime on CPU: the graph embbench_model.json's `ort_graph` names (the transformer-optimised
onnx/model_fused.onnx), else MODEL_DIR/onnx/model.onnx; both end in pooling and L2 norm.

The session options are the contract's, shared with onnx-cpp and ort-rust ("ONNX Runtime: one graph,
one library, one set of session options"): ORT_ENABLE_ALL, sequential execution, intra-op threads =
NUM_THREADS (never ONNX Runtime's default, which counts the host's cores, not the cpuset), one
inter-op thread, the CPU memory arena on, and the intra-op threads pinned: the calling thread (the
server's inference thread) is the first thread and takes the first CPU of the cpuset (one per
physical core first), each of the NUM_THREADS - 1 pool threads the next one
(`session.intra_op_thread_affinities`, whose processor numbers count from 1). The spinning policy
(`session.intra_op.allow_spinning`) is ORT_INTRA_OP_SPINNING (options.py's default, measured in
README.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort

from ..config import ConfigError
from ..cpus import pin_this_thread, this_thread_cpus, thread_cpus
from ..text_tokenizer import TokenBatch
from .base import Backend
from ..options import ort_options

OUTPUT = "sentence_embedding"
DEFAULT_GRAPH = "onnx/model.onnx"


def intra_op_affinities(cpus: list[int]) -> str:
    """session.intra_op_thread_affinities for threads pinned to `cpus` (the calling thread first): one
    entry per pool thread, i.e. for cpus[1:], in ONNX Runtime's numbering (logical processor n + 1)."""
    return ";".join(str(cpu + 1) for cpu in cpus[1:])


class OnnxRuntimeBackend(Backend):
    framework = "onnxruntime"

    def framework_version(self) -> str:
        return ort.__version__

    def graph_file(self) -> str:
        return self.spec.ort_graph or DEFAULT_GRAPH

    def load(self) -> None:
        graph = self.graph_file()
        path = self.settings.model_dir / graph
        if not path.is_file():
            named = "embbench_model.json's ort_graph names it" if self.spec.ort_graph else "the default graph"
            raise ConfigError(f"{path} is missing ({named}): run `embbench convert` for this model")
        threads = self.settings.num_threads
        self.spinning = ort_options().spinning
        self.cpus = thread_cpus(threads)
        self.affinities = intra_op_affinities(self.cpus)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.enable_cpu_mem_arena = True
        spin = "1" if self.spinning else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spin)
        options.add_session_config_entry("session.inter_op.allow_spinning", spin)
        if threads > 1:
            options.add_session_config_entry("session.intra_op_thread_affinities", self.affinities)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        inputs = {i.name for i in self.session.get_inputs()}
        unknown = inputs - {"input_ids", "attention_mask", "token_type_ids"}
        if unknown or not {"input_ids", "attention_mask"} <= inputs:
            raise ConfigError(f"{path} has inputs {sorted(inputs)}: expected input_ids and attention_mask")
        if OUTPUT not in {o.name for o in self.session.get_outputs()}:
            raise ConfigError(f"{path} has no output {OUTPUT!r}")
        self.wants_token_type_ids = "token_type_ids" in inputs
        self.caller_cpus: str | None = None

    def prepare_inference_thread(self, index: int) -> None:
        # With one inference thread it is the pool's first thread and takes the first CPU; several
        # inference threads share the session's pool, so they are left on the whole cpuset.
        if self.settings.max_inflight == 1 and index == 0:
            pin_this_thread(self.cpus[0])
        self.caller_cpus = this_thread_cpus()

    def embed(self, batch: TokenBatch) -> np.ndarray:
        feeds = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
        if self.wants_token_type_ids:
            feeds["token_type_ids"] = np.zeros_like(batch.input_ids)
        return self.session.run([OUTPUT], feeds)[0]

    def build_info(self) -> dict[str, Any]:
        return {
            "onnxruntime_version": ort.__version__,
            "onnxruntime_build": ort.get_build_info(),
            "onnxruntime_library": "the onnxruntime PyPI wheel's libonnxruntime",
            "providers": self.session.get_providers(),
            "model_file": self.graph_file(),
            "graph_optimization_level": "ORT_ENABLE_ALL",
            "execution_mode": "sequential",
            "intra_op_num_threads": self.settings.num_threads,
            "inter_op_num_threads": 1,
            "cpu_mem_arena": True,
            "intra_op_spinning": self.spinning,
            "intra_op_thread_affinities": self.affinities if self.settings.num_threads > 1 else None,
            # CPU of each intra-op thread, the calling (inference) thread first.
            "thread_cpus": self.cpus,
            "inference_thread_cpus": self.caller_cpus,
        }
