"""The backend interface: load a model format from the model folder, embed token batches."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from ..config import ModelSpec, Settings
from ..text_tokenizer import TokenBatch


class Backend(ABC):
    """One inference framework. The server tokenizes (so every backend sees the same ids and the
    tokenization time is measured apart) and calls embed() from up to MAX_INFLIGHT threads at once,
    so embed() must be thread-safe."""

    #: the framework's name in /info, also the image folder's name
    framework: str = ""

    def __init__(self, spec: ModelSpec, settings: Settings):
        self.spec = spec
        self.settings = settings

    @abstractmethod
    def framework_version(self) -> str: ...

    @abstractmethod
    def load(self) -> None:
        """Reads the model from settings.model_dir; called once, off the event loop."""

    @abstractmethod
    def embed(self, batch: TokenBatch) -> np.ndarray:
        """float32 [batch, embedding_dim], pooled and L2-normalised, one row per input row."""

    def build_info(self) -> dict[str, Any]:
        """Framework facts for /info's `build`: versions, BLAS, thread and performance settings."""
        return {}
