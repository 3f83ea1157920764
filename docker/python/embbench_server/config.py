"""Settings from the environment and the model folder's embbench_model.json, checked up front."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping


class ConfigError(Exception):
    """A setting or model file is missing or invalid; the message names which and why."""


ARCHITECTURES = ("xlm-roberta", "bert", "qwen3", "gemma3")
POOLINGS = ("cls", "mean", "last_token")
SERVING_MODES = ("sequential", "batched")


@dataclass(frozen=True)
class Settings:
    model_dir: Path
    host: str
    port: int
    num_threads: int
    max_batch: int
    max_inflight: int
    max_body_bytes: int
    load_delay_ms: int
    warmup: bool = True
    #: "sequential": each request is one inference; "batched": queued requests share inferences
    serving: str = "sequential"
    #: batched: most padded tokens (rows x longest row) in one inference; a larger request runs alone
    max_batch_tokens: int = 16384
    #: batched: how long a batch may wait for more requests after its oldest one was queued
    max_wait_us: int = 0
    #: a request whose texts hold at most this many characters is tokenized on the event loop
    #: (this server's TOKENIZE_INLINE_CHARS; README.md says how the default was measured)
    tokenize_inline_chars: int = 512


def _int(env: Mapping[str, str], name: str, default: int | None, minimum: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        if default is None:
            raise ConfigError(f"{name} is required: set it to an integer >= {minimum}")
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be an integer: got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}: got {value}")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    """A 0/1 switch: anything else is a configuration error rather than a guess."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip()
    if value not in ("0", "1"):
        raise ConfigError(f"{name} must be 0 or 1: got {raw!r}")
    return value == "1"


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip()
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}: got {raw!r}")
    return value


def settings_from_env(env: Mapping[str, str] = os.environ) -> Settings:
    """Reads the contract's variables; NUM_THREADS is required because no pool is sized from the host."""
    model_dir = env.get("MODEL_DIR", "").strip()
    if not model_dir:
        raise ConfigError("MODEL_DIR is required: set it to a folder written by `embbench convert`")
    return Settings(
        model_dir=Path(model_dir),
        host=env.get("HOST", "").strip() or "127.0.0.1",
        port=_int(env, "PORT", 8080, 0),
        num_threads=_int(env, "NUM_THREADS", None, 1),
        max_batch=_int(env, "MAX_BATCH", 64, 1),
        max_inflight=_int(env, "MAX_INFLIGHT", 1, 1),
        max_body_bytes=_int(env, "MAX_BODY_BYTES", 2 * 1024 * 1024, 1),
        load_delay_ms=_int(env, "LOAD_DELAY_MS", 0, 0),
        warmup=_flag(env, "WARMUP", True),
        serving=_choice(env, "SERVING", "sequential", SERVING_MODES),
        max_batch_tokens=_int(env, "MAX_BATCH_TOKENS", 16384, 1),
        max_wait_us=_int(env, "MAX_WAIT_US", 0, 0),
        tokenize_inline_chars=_int(env, "TOKENIZE_INLINE_CHARS", 512, 0),
    )


ATTENTIONS = ("bidirectional", "causal")
ACTIVATIONS = ("identity",)
#: the architectures whose folders must state the pipeline fields: for them a missing field would
#: serve the model wrongly (EmbeddingGemma without its Dense layers still answers rows of the right size)
DECODERS = ("qwen3", "gemma3")
#: the pipeline fields convert writes since issue 14
PIPELINE_FIELDS = ("attention", "dense", "prompts", "dimensions")


@dataclass(frozen=True)
class DenseLayer:
    """A sentence-transformers Dense module: y = activation(x · Wᵀ + b), W [out, in] in
    MODEL_DIR/<path>/model.safetensors (tensor linear.weight, and linear.bias when `bias`)."""

    in_features: int
    out_features: int
    bias: bool
    activation: str
    path: str


@dataclass(frozen=True)
class Dimensions:
    """The output sizes the model supports (Matryoshka): `sizes`, or every size from `min` to `max`."""

    min: int
    max: int
    sizes: tuple[int, ...] | None = None

    def allows(self, n: int) -> bool:
        return n in self.sizes if self.sizes is not None else self.min <= n <= self.max

    def describe(self) -> str:
        """The allowed sizes, as the 422 for an unsupported `dimensions` names them."""
        if self.sizes is not None:
            return "one of " + ", ".join(str(n) for n in sorted(self.sizes))
        return f"an integer from {self.min} to {self.max}"

    def as_json(self) -> dict:
        out: dict = {"min": self.min, "max": self.max}
        if self.sizes is not None:
            out["sizes"] = sorted(self.sizes)
        return out


@dataclass(frozen=True)
class ModelSpec:
    """The serving facts of embbench_model.json."""

    name: str
    architecture: str
    pooling: str
    normalize: bool
    max_seq_length: int
    embedding_dim: int
    #: the graph ONNX Runtime loads, relative to MODEL_DIR (embbench_model.json's optional ort_graph)
    ort_graph: str | None = None
    #: "bidirectional" or "causal"
    attention: str = "bidirectional"
    #: the Dense modules after pooling, before the L2 norm, in order
    dense: tuple[DenseLayer, ...] = ()
    #: prompt name -> text prepended to each input before tokenization, in the file's order
    prompts: dict[str, str] = field(default_factory=dict)
    #: None: only embedding_dim (a folder from before the field); see dimensions_rule()
    dimensions: Dimensions | None = None

    def dimensions_rule(self) -> Dimensions:
        if self.dimensions is not None:
            return self.dimensions
        d = self.embedding_dim
        return Dimensions(d, d, (d,))


def _inside_model_dir(path: Path, name: str, value: object) -> str:
    if type(value) is not str or not value.strip():
        raise ConfigError(f"{path}: field {name!r} must be a non-empty string: got {value!r}")
    relative = Path(value)
    if relative.is_absolute() or ".." in relative.parts:
        raise ConfigError(f"{path}: field {name!r} must be a path inside MODEL_DIR: got {value!r}")
    return value


def _positive_int(path: Path, name: str, value: object) -> int:
    # bool is an int in Python: keep `true` out of integer fields.
    if type(value) is not int or value < 1:
        raise ConfigError(f"{path}: field {name!r} must be an integer >= 1: got {value!r}")
    return value


def parse_dense(path: Path, raw: object, embedding_dim: int) -> tuple[DenseLayer, ...]:
    """embbench_model.json's `dense`: a chain of layers whose last one ends at embedding_dim."""
    if not isinstance(raw, list):
        raise ConfigError(f"{path}: field 'dense' must be a list of layers: got {raw!r}")
    layers: list[DenseLayer] = []
    for i, item in enumerate(raw):
        where = f"dense[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{path}: field {where!r} must be an object: got {item!r}")
        missing = [k for k in ("in", "out", "bias", "activation", "path") if k not in item]
        if missing:
            raise ConfigError(f"{path}: field {where!r} lacks {', '.join(missing)}")
        if type(item["bias"]) is not bool:
            raise ConfigError(f"{path}: field '{where}.bias' must be a boolean: got {item['bias']!r}")
        if item["activation"] not in ACTIVATIONS:
            raise ConfigError(
                f"{path}: field '{where}.activation' must be one of {', '.join(ACTIVATIONS)}: got {item['activation']!r}"
            )
        layer = DenseLayer(
            in_features=_positive_int(path, f"{where}.in", item["in"]),
            out_features=_positive_int(path, f"{where}.out", item["out"]),
            bias=item["bias"],
            activation=item["activation"],
            path=_inside_model_dir(path, f"{where}.path", item["path"]),
        )
        if layers and layer.in_features != layers[-1].out_features:
            raise ConfigError(
                f"{path}: field '{where}.in' is {layer.in_features}: expected {layers[-1].out_features}, "
                f"the out of dense[{i - 1}]"
            )
        layers.append(layer)
    if layers and layers[-1].out_features != embedding_dim:
        raise ConfigError(
            f"{path}: the last dense layer's out is {layers[-1].out_features}: expected embedding_dim ({embedding_dim})"
        )
    return tuple(layers)


def parse_prompts(path: Path, raw: object) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(type(k) is str and k and type(v) is str for k, v in raw.items()):
        raise ConfigError(f"{path}: field 'prompts' must map prompt names to strings: got {raw!r}")
    return dict(raw)


def parse_dimensions(path: Path, raw: object, embedding_dim: int) -> Dimensions:
    """{min, max, sizes?}: max is embedding_dim, sizes (when present) within min..max."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: field 'dimensions' must be an object {{min, max, sizes}}: got {raw!r}")
    for key in ("min", "max"):
        if key not in raw:
            raise ConfigError(f"{path}: field 'dimensions' lacks {key!r}")
    low = _positive_int(path, "dimensions.min", raw["min"])
    high = _positive_int(path, "dimensions.max", raw["max"])
    if high != embedding_dim:
        raise ConfigError(f"{path}: field 'dimensions.max' is {high}: expected embedding_dim ({embedding_dim})")
    if low > high:
        raise ConfigError(f"{path}: field 'dimensions.min' is {low}: more than dimensions.max ({high})")
    sizes = raw.get("sizes")
    if sizes is None:
        return Dimensions(low, high)
    if not isinstance(sizes, list) or not sizes or any(type(n) is not int for n in sizes):
        raise ConfigError(f"{path}: field 'dimensions.sizes' must be a non-empty list of integers: got {sizes!r}")
    outside = [n for n in sizes if not low <= n <= high]
    if outside:
        raise ConfigError(f"{path}: field 'dimensions.sizes' holds {outside}: outside {low}..{high}")
    return Dimensions(low, high, tuple(sorted(set(sizes))))


def load_model_spec(model_dir: Path) -> ModelSpec:
    """embbench_model.json, checked. A folder without the pipeline fields (convert before issue 14)
    loads as no dense, no prompts, dimensions [embedding_dim], bidirectional, for the encoders
    (bert, xlm-roberta: exactly what they are); a decoder's (qwen3, gemma3) is refused, since
    serving it without its pipeline would be silently wrong."""
    path = model_dir / "embbench_model.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing: is MODEL_DIR a folder written by `embbench convert`?") from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path} cannot be read as JSON: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a JSON object: got {type(raw).__name__}")

    def field_(name: str, kind: type, choices: tuple[str, ...] | None = None):
        if name not in raw:
            raise ConfigError(f"{path}: field {name!r} is missing")
        value = raw[name]
        # bool is an int in Python: keep `true` out of integer fields and 1 out of boolean ones.
        if type(value) is not kind:
            raise ConfigError(f"{path}: field {name!r} must be {kind.__name__}: got {value!r}")
        if choices is not None and value not in choices:
            raise ConfigError(f"{path}: field {name!r} must be one of {', '.join(choices)}: got {value!r}")
        if kind is int and value < 1:
            raise ConfigError(f"{path}: field {name!r} must be >= 1: got {value}")
        return value

    ort_graph = raw.get("ort_graph")
    if ort_graph is not None:
        _inside_model_dir(path, "ort_graph", ort_graph)

    architecture = field_("architecture", str, ARCHITECTURES)
    embedding_dim = field_("embedding_dim", int)
    missing = [name for name in PIPELINE_FIELDS if name not in raw]
    if missing and architecture in DECODERS:
        raise ConfigError(
            f"{path}: field {missing[0]!r} is missing: a {architecture} model folder must state its whole "
            f"pipeline ({', '.join(PIPELINE_FIELDS)}); it was written by an older `embbench convert`: convert it again"
        )
    return ModelSpec(
        name=field_("name", str),
        architecture=architecture,
        pooling=field_("pooling", str, POOLINGS),
        normalize=field_("normalize", bool),
        max_seq_length=field_("max_seq_length", int),
        embedding_dim=embedding_dim,
        ort_graph=ort_graph,
        attention=field_("attention", str, ATTENTIONS) if "attention" in raw else "bidirectional",
        dense=parse_dense(path, raw["dense"], embedding_dim) if "dense" in raw else (),
        prompts=parse_prompts(path, raw["prompts"]) if "prompts" in raw else {},
        dimensions=parse_dimensions(path, raw["dimensions"], embedding_dim) if "dimensions" in raw else None,
    )
