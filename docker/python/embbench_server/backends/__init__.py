"""Backends by name (options.FRAMEWORKS). Each is imported only when chosen, so an image carries one framework."""

from __future__ import annotations

import importlib

from ..options import check_backend_name
from .base import Backend

BACKENDS = {
    "torch": "embbench_server.backends.torch_backend:TorchBackend",
    "onnxruntime": "embbench_server.backends.onnxruntime_backend:OnnxRuntimeBackend",
    "openvino": "embbench_server.backends.openvino_backend:OpenVinoBackend",
}


def backend_class(name: str) -> type[Backend]:
    """Imports the backend's module, and so its framework: seconds for torch."""
    check_backend_name(name)
    module_name, class_name = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)
