"""The backend interface: load a model format from the model folder, embed token batches."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from ..config import ModelSpec, Settings
from ..text_tokenizer import TokenBatch


class Backend(ABC):
    """One inference framework. The server tokenizes (so every backend sees the same ids and the
    tokenization time is measured apart) and calls embed() from its MAX_INFLIGHT inference threads,
    up to MAX_INFLIGHT at once, so embed() must be thread-safe.

    A backend's module imports its framework at the top, so importing the module and constructing
    the backend (the server's make_backend) imports the runtime, init_runtime() sets it up, and
    load() reads the model: /info's startup stamp runtime_ready falls between init_runtime() and load().
    Nothing else heavy (a model library such as transformers) may be imported before load()."""

    #: the framework's name in /info, also the image folder's name
    framework: str = ""

    def __init__(self, spec: ModelSpec, settings: Settings):
        self.spec = spec
        self.settings = settings

    @abstractmethod
    def framework_version(self) -> str: ...

    def init_runtime(self) -> None:
        """Sets up the imported runtime (thread pools, the plugin core) without reading the model."""

    @abstractmethod
    def load(self) -> None:
        """Reads the model from settings.model_dir; called once, off the event loop."""

    def prepare_inference_thread(self, index: int) -> None:
        """Runs first in each of the server's MAX_INFLIGHT inference threads (index 0, 1, ...), before
        any embed() there: where a backend pins the thread that calls the runtime."""

    @abstractmethod
    def embed(self, batch: TokenBatch) -> np.ndarray:
        """float32 [batch, embedding_dim], pooled and L2-normalised, one row per input row."""

    def build_info(self) -> dict[str, Any]:
        """Framework facts for /info's `build`: versions, BLAS, thread and performance settings."""
        return {}
