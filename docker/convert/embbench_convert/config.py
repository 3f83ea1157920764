"""Reads one model's entry from models.yaml and checks the fields convert relies on."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

ARCHITECTURES = ("xlm-roberta", "bert", "qwen3", "gemma3")
POOLINGS = ("cls", "mean", "last_token")
SOURCES = ("embedded", "pypi", "huggingface")
PROMPT_NAME = re.compile(r"[A-Za-z0-9_-]+")
ATTENTIONS = ("bidirectional", "causal")
ACTIVATIONS = ("identity",)
# Which attention each architecture can run: encoders see both sides, Qwen3 is causal, Gemma3 either
# (EmbeddingGemma is bidirectional, transformers' use_bidirectional_attention).
ARCHITECTURE_ATTENTION = {
    "xlm-roberta": ("bidirectional",),
    "bert": ("bidirectional",),
    "qwen3": ("causal",),
    "gemma3": ("bidirectional", "causal"),
}


@dataclasses.dataclass(frozen=True)
class DenseSpec:
    """One sentence-transformers Dense module after pooling: y = activation(x W^T + b)."""

    in_features: int
    out_features: int
    bias: bool
    activation: str

    def as_json(self) -> dict:
        return {"in": self.in_features, "out": self.out_features, "bias": self.bias, "activation": self.activation}


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
    attention: str = "bidirectional"
    dense: tuple[DenseSpec, ...] = ()
    prompts: dict[str, str] = dataclasses.field(default_factory=dict)
    # {"min", "max"} and "sizes" (ascending) when only listed sizes are allowed
    dimensions: dict[str, Any] = dataclasses.field(default_factory=dict)

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

    embedding_dim = field("embedding_dim", kind=int)
    architecture = field("architecture", ARCHITECTURES)
    attention = field("attention", ATTENTIONS)
    if attention not in ARCHITECTURE_ATTENTION[architecture]:
        raise ConfigError(
            f"{where}.attention is '{attention}': architecture {architecture} runs "
            f"{' or '.join(ARCHITECTURE_ATTENTION[architecture])} attention"
        )
    entry = ModelEntry(
        id=model_id,
        architecture=architecture,
        source=field("source", SOURCES),
        pooling=field("pooling", POOLINGS),
        normalize=field("normalize", kind=bool),
        max_seq_length=field("max_seq_length", kind=int),
        embedding_dim=embedding_dim,
        raw=raw,
        attention=attention,
        dense=parse_dense(field("dense"), embedding_dim, f"{where}.dense"),
        prompts=parse_prompts(field("prompts"), f"{where}.prompts"),
        dimensions=parse_dimensions(field("dimensions"), embedding_dim, f"{where}.dimensions"),
    )
    if not entry.normalize:
        raise ConfigError(f"{where}.normalize is false: the served graphs always end in an L2 norm")
    if entry.source == "huggingface" and not entry.hub_id:
        raise ConfigError(f"{where}.huggingface_id is missing (source is huggingface)")
    if entry.source == "pypi" and not entry.pypi_package:
        raise ConfigError(f"{where}.pypi_package is missing (source is pypi)")
    return entry


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def parse_dense(value: Any, embedding_dim: int, where: str) -> tuple[DenseSpec, ...]:
    """models.yaml `dense`: a list of {in, out, bias, activation}, chained, the last one ending at embedding_dim."""
    if not isinstance(value, list):
        raise ConfigError(f"{where} must be a list of {{in, out, bias, activation}} ([] for none), found {value!r}")
    layers = []
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{at} must be a mapping {{in, out, bias, activation}}, found {item!r}")
        unknown = sorted(set(item) - {"in", "out", "bias", "activation"})
        if unknown:
            raise ConfigError(f"{at} has unknown keys {', '.join(unknown)}: expected in, out, bias, activation")
        for key in ("in", "out"):
            if not _positive_int(item.get(key)):
                raise ConfigError(f"{at}.{key} must be a positive integer, found {item.get(key)!r}")
        if not isinstance(item.get("bias"), bool):
            raise ConfigError(f"{at}.bias must be true or false, found {item.get('bias')!r}")
        if item.get("activation") not in ACTIVATIONS:
            raise ConfigError(
                f"{at}.activation is {item.get('activation')!r}: expected one of {', '.join(ACTIVATIONS)}"
            )
        if layers and item["in"] != layers[-1].out_features:
            raise ConfigError(f"{at}.in is {item['in']} but dense[{i - 1}].out is {layers[-1].out_features}")
        layers.append(DenseSpec(item["in"], item["out"], item["bias"], item["activation"]))
    if layers and layers[-1].out_features != embedding_dim:
        raise ConfigError(
            f"{where}[{len(layers) - 1}].out is {layers[-1].out_features}: the last Dense layer must give "
            f"embedding_dim {embedding_dim}"
        )
    return tuple(layers)


def parse_prompts(value: Any, where: str) -> dict[str, str]:
    """models.yaml `prompts`: prompt name -> text ({} for none)."""
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping of prompt name to text ({{}} for none), found {value!r}")
    for name, text in value.items():
        if not isinstance(name, str) or not PROMPT_NAME.fullmatch(name):
            raise ConfigError(
                f"{where} has the prompt name {name!r}: expected letters, digits, '-' or '_' "
                f"(it names payload files seq<L>_b<B>_<prompt>.jsonl)"
            )
        if not isinstance(text, str):
            raise ConfigError(f"{where}.{name} must be a string (the text prepended), found {text!r}")
    return dict(value)


def parse_dimensions(value: Any, embedding_dim: int, where: str) -> dict[str, Any]:
    """models.yaml `dimensions` as embbench_model.json states it: {"min", "max", "sizes"?}.

    A list allows exactly those sizes; {min: N} every size from N to embedding_dim.
    """
    if isinstance(value, list):
        if not value or not all(_positive_int(v) for v in value):
            raise ConfigError(f"{where} must be a non-empty list of positive integers, found {value!r}")
        sizes = sorted(set(value))
        if len(sizes) != len(value):
            raise ConfigError(f"{where} lists a size twice: {value!r}")
        if sizes[-1] != embedding_dim:
            raise ConfigError(f"{where} is {value!r}: its largest size must be embedding_dim {embedding_dim}")
        return {"min": sizes[0], "max": embedding_dim, "sizes": sizes}
    if isinstance(value, dict):
        if set(value) != {"min"}:
            raise ConfigError(f"{where} must be a list of sizes or {{min: N}}, found {value!r}")
        low = value["min"]
        if not _positive_int(low) or low > embedding_dim:
            raise ConfigError(f"{where}.min must be an integer from 1 to embedding_dim {embedding_dim}, found {low!r}")
        return {"min": low, "max": embedding_dim}
    raise ConfigError(f"{where} must be a list of sizes or {{min: N}}, found {value!r}")
