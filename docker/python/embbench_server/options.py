"""What each backend reads from the environment, checked before anything loads (so a malformed value
is a configuration error, exit 2, not a load failure), and the native thread variables that must be
set before a framework is imported. No framework is imported here."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, MutableMapping

from .config import ConfigError

FRAMEWORKS = ("torch", "onnxruntime", "openvino")

#: OpenVINO's performance hint unless OV_HINT says otherwise (README.md: measured)
DEFAULT_OV_HINT = "LATENCY"
#: ONNX Runtime's session.intra_op.allow_spinning unless ORT_INTRA_OP_SPINNING says otherwise (README.md: measured)
DEFAULT_ORT_SPINNING = "0"
#: OpenMP binding for torch: one place per physical core, the team's threads on consecutive places
TORCH_OMP_BINDING = {"OMP_PLACES": "cores", "OMP_PROC_BIND": "close"}
#: the variables set_native_thread_env set in this process (a user's own values are not in it)
SET_BY_SERVER: dict[str, str] = {}


@dataclass(frozen=True)
class OrtOptions:
    spinning: bool


@dataclass(frozen=True)
class OvOptions:
    hint: str
    ir_dir: str
    cpu_pinning: bool
    #: whether OV_CPU_PINNING was given (else the server's default, pinning on)
    cpu_pinning_from_env: bool


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...], *, upper: bool = False) -> str:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().upper() if upper else raw.strip().lower()
    if value not in choices:
        raise ConfigError(f"{name} must be {' or '.join(choices)}: got {raw!r}")
    return value


def ort_options(env: Mapping[str, str] = os.environ) -> OrtOptions:
    spinning = _choice(env, "ORT_INTRA_OP_SPINNING", DEFAULT_ORT_SPINNING, ("0", "1"))
    return OrtOptions(spinning=spinning == "1")


def ov_options(env: Mapping[str, str] = os.environ) -> OvOptions:
    hint = _choice(env, "OV_HINT", DEFAULT_OV_HINT, ("LATENCY", "THROUGHPUT"), upper=True)
    ir_dir = (env.get("OV_IR_DIR") or "").strip() or "openvino"
    if os.path.isabs(ir_dir) or ".." in ir_dir.split("/"):
        raise ConfigError(f"OV_IR_DIR must be a folder inside MODEL_DIR: got {ir_dir!r}")
    pinning_raw = (env.get("OV_CPU_PINNING") or "").strip()
    pinning = _choice(env, "OV_CPU_PINNING", "true", ("true", "false"))
    return OvOptions(hint=hint, ir_dir=ir_dir, cpu_pinning=pinning == "true", cpu_pinning_from_env=bool(pinning_raw))


def check_backend_name(name: str) -> str:
    if name not in FRAMEWORKS:
        raise ConfigError(
            f"unknown backend {name!r}: expected one of {', '.join(FRAMEWORKS)} (--backend or EMBBENCH_BACKEND)"
        )
    return name


def check_options(framework: str, env: Mapping[str, str] = os.environ) -> None:
    """Raises ConfigError naming the first malformed framework variable."""
    if framework == "onnxruntime":
        ort_options(env)
    elif framework == "openvino":
        ov_options(env)


def set_native_thread_env(framework: str, num_threads: int, env: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """OpenMP, MKL and OpenBLAS size their pools when first loaded, from the host unless told: give them
    NUM_THREADS before any framework is imported. For torch (GNU OpenMP), bind the OpenMP team to the
    cpuset's cores (OMP_PLACES=cores, OMP_PROC_BIND=close) unless the user set either variable.
    Tokenization runs one thread per request (no rayon pool sized from the host), like the compiled
    servers. Returns the variables this call set (a user's own value is kept and not listed)."""
    wanted = {name: str(num_threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    if framework == "torch" and not any(env.get(name) for name in TORCH_OMP_BINDING):
        wanted.update(TORCH_OMP_BINDING)
    set_here = {}
    for name, value in wanted.items():
        if not env.get(name):
            env[name] = value
            set_here[name] = value
    env["TOKENIZERS_PARALLELISM"] = "false"
    if env is os.environ:
        SET_BY_SERVER.update(set_here)
    return set_here
