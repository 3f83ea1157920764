"""OpenVINO on CPU: MODEL_DIR/openvino/model.xml (fp32 IR; OV_IR_DIR=openvino_fp16 for the fp16 one).

Tuned per OpenVINO's performance guide: INFERENCE_NUM_THREADS = NUM_THREADS, fp32 inference
precision (the CPU plugin would otherwise pick bf16 on CPUs that have it), ENABLE_CPU_PINNING on
(the plugin pins its stream threads to the CPUs of the process's affinity mask, the cpuset;
OV_CPU_PINNING=false turns it off), and a performance hint from OV_HINT: LATENCY (the default,
measured in README.md) or THROUGHPUT. Each concurrent inference takes its own infer request from a
pool of MAX_INFLIGHT requests, so under THROUGHPUT concurrent requests run on the plugin's parallel
streams.
"""

from __future__ import annotations

import queue
from typing import Any

import numpy as np
import openvino as ov
import openvino.properties as props
import openvino.properties.hint as hints

from ..config import ConfigError
from ..text_tokenizer import TokenBatch
from .base import Backend
from ..options import ov_options

OUTPUT = "sentence_embedding"
HINTS = {"LATENCY": hints.PerformanceMode.LATENCY, "THROUGHPUT": hints.PerformanceMode.THROUGHPUT}


class OpenVinoBackend(Backend):
    framework = "openvino"

    def framework_version(self) -> str:
        return ov.get_version()

    def init_runtime(self) -> None:
        self.core = ov.Core()

    def load(self) -> None:
        options = ov_options()
        hint, ir_dir = options.hint, options.ir_dir
        path = self.settings.model_dir / ir_dir / "model.xml"
        if not path.is_file():
            raise ConfigError(f"{path} is missing: run `embbench convert` for this model")
        config: dict[str, Any] = {
            props.inference_num_threads: self.settings.num_threads,
            hints.performance_mode: HINTS[hint],
            hints.inference_precision: ov.Type.f32,
            hints.enable_cpu_pinning: options.cpu_pinning,
        }
        self.options = options
        model = self.core.read_model(str(path))
        inputs = {i.get_any_name() for i in model.inputs}
        if not {"input_ids", "attention_mask"} <= inputs or inputs - {"input_ids", "attention_mask", "token_type_ids"}:
            raise ConfigError(f"{path} has inputs {sorted(inputs)}: expected input_ids and attention_mask")
        self.wants_token_type_ids = "token_type_ids" in inputs
        self.compiled = self.core.compile_model(model, "CPU", config)
        self.output = self.compiled.output(OUTPUT)
        self.hint = hint
        self.ir_dir = ir_dir
        self.requests: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(self.settings.max_inflight):
            self.requests.put(self.compiled.create_infer_request())

    def embed(self, batch: TokenBatch) -> np.ndarray:
        feeds = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
        if self.wants_token_type_ids:
            feeds["token_type_ids"] = np.zeros_like(batch.input_ids)
        request = self.requests.get()
        try:
            # infer() returns copies of the outputs (share_outputs defaults to False), so the rows stay
            # valid after the request goes back to the pool and is reused.
            return np.asarray(request.infer(feeds, share_inputs=True)[self.output], dtype=np.float32)
        finally:
            self.requests.put(request)

    def build_info(self) -> dict[str, Any]:
        def prop(name: str) -> Any:
            try:
                value = self.compiled.get_property(name)
            except Exception as e:  # noqa: BLE001 -- a property some plugin versions lack
                return f"unavailable: {e}"
            if isinstance(value, (bool, int, float, str)):
                return value
            # ov.Type prints as "<Type: 'float32'>"; its type name is the plain "f32".
            return value.get_type_name() if hasattr(value, "get_type_name") else str(value)

        return {
            "performance_hint": self.hint,
            "cpu_pinning_requested": self.options.cpu_pinning,
            "cpu_pinning_source": "OV_CPU_PINNING" if self.options.cpu_pinning_from_env else "server default",
            "infer_request_pool": self.settings.max_inflight,
            "inference_num_threads": prop("INFERENCE_NUM_THREADS"),
            "num_streams": prop("NUM_STREAMS"),
            "optimal_number_of_infer_requests": prop("OPTIMAL_NUMBER_OF_INFER_REQUESTS"),
            "inference_precision": prop("INFERENCE_PRECISION_HINT"),
            "enable_cpu_pinning": prop("ENABLE_CPU_PINNING"),
            "scheduling_core_type": prop("SCHEDULING_CORE_TYPE"),
            "cpu": self.core.get_property("CPU", "FULL_DEVICE_NAME"),
            "cpu_capabilities": list(self.core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")),
            "model_file": f"{self.ir_dir}/model.xml",
        }
