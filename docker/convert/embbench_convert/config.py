"""Reads one model's entry from models.yaml and checks the fields convert relies on."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

ARCHITECTURES = ("xlm-roberta", "bert", "qwen3", "gemma3")
POOLINGS = ("cls", "mean", "last_token")
SOURCES = ("embedded", "pypi", "huggingface")


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """The facts of one models.yaml entry that convert uses; `raw` is the whole entry."""

    id: str
    architecture: str
    source: str
    pooling: str
    normalize: bool
    max_seq_length: int
    embedding_dim: int
    raw: dict[str, Any]

    @property
    def hub_id(self) -> str | None:
        return self.raw.get("huggingface_id")

    @property
    def revision(self) -> str:
        return str(self.raw.get("revision", "main"))

    @property
    def pypi_package(self) -> str | None:
        return self.raw.get("pypi_package")


def load_entry(models_file: Path, model_id: str) -> ModelEntry:
    """Returns the checked entry `model_id` of `models_file`; raises ConfigError naming what is wrong."""
    try:
        doc = yaml.safe_load(models_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"Models file not found: '{models_file}'") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"Models file '{models_file}' is not valid YAML: {e}") from None
    models = (doc or {}).get("models")
    if not isinstance(models, dict):
        raise ConfigError(f"Models file '{models_file}' has no 'models' mapping")
    if model_id not in models:
        known = ", ".join(sorted(models))
        raise ConfigError(f"Unknown model '{model_id}' in '{models_file}': known models are {known}")
    raw = models[model_id]
    where = f"'{models_file}' models.{model_id}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} is not a mapping")

    kind = raw.get("type", "text_embedding")
    if kind != "text_embedding":
        raise ConfigError(
            f"Model '{model_id}' has type '{kind}': convert supports only text_embedding models so far"
        )

    def field(name: str, choices: tuple[str, ...] | None = None, kind: type = str) -> Any:
        if name not in raw:
            raise ConfigError(f"{where}.{name} is missing")
        value = raw[name]
        if kind is int and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise ConfigError(f"{where}.{name} must be a positive integer, found {value!r}")
        if kind is bool and not isinstance(value, bool):
            raise ConfigError(f"{where}.{name} must be true or false, found {value!r}")
        if choices is not None and value not in choices:
            raise ConfigError(f"{where}.{name} is '{value}': expected one of {', '.join(choices)}")
        return value

    entry = ModelEntry(
        id=model_id,
        architecture=field("architecture", ARCHITECTURES),
        source=field("source", SOURCES),
        pooling=field("pooling", POOLINGS),
        normalize=field("normalize", kind=bool),
        max_seq_length=field("max_seq_length", kind=int),
        embedding_dim=field("embedding_dim", kind=int),
        raw=raw,
    )
    if not entry.normalize:
        raise ConfigError(f"{where}.normalize is false: the served graphs always end in an L2 norm")
    if entry.source == "huggingface" and not entry.hub_id:
        raise ConfigError(f"{where}.huggingface_id is missing (source is huggingface)")
    if entry.source == "pypi" and not entry.pypi_package:
        raise ConfigError(f"{where}.pypi_package is missing (source is pypi)")
    return entry
