"""Settings from the environment and the model folder's embbench_model.json, checked up front."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
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


def load_model_spec(model_dir: Path) -> ModelSpec:
    path = model_dir / "embbench_model.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing: is MODEL_DIR a folder written by `embbench convert`?") from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path} cannot be read as JSON: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a JSON object: got {type(raw).__name__}")

    def field(name: str, kind: type, choices: tuple[str, ...] | None = None):
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
        if type(ort_graph) is not str or not ort_graph.strip():
            raise ConfigError(f"{path}: field 'ort_graph' must be a non-empty string: got {ort_graph!r}")
        relative = Path(ort_graph)
        if relative.is_absolute() or ".." in relative.parts:
            raise ConfigError(f"{path}: field 'ort_graph' must be a path inside MODEL_DIR: got {ort_graph!r}")

    return ModelSpec(
        name=field("name", str),
        architecture=field("architecture", str, ARCHITECTURES),
        pooling=field("pooling", str, POOLINGS),
        normalize=field("normalize", bool),
        max_seq_length=field("max_seq_length", int),
        embedding_dim=field("embedding_dim", int),
        ort_graph=ort_graph,
    )
