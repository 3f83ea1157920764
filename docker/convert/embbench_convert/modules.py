"""The sentence-transformers module layout of a model folder: read it, check it against models.yaml, write it.

A sentence-transformers model folder lists its pipeline in modules.json: the Transformer (path ""),
then Pooling (1_Pooling/config.json), any Dense modules (<k>_Dense/config.json and model.safetensors
with linear.weight [out, in], linear.bias), then Normalize. config_sentence_transformers.json holds
the prompts. embbench serves exactly that pipeline, so models.yaml must agree with it.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from .config import DenseSpec, ModelEntry
from .errors import ConfigError

MODULE_TYPES = {
    "sentence_transformers.models.Transformer": "transformer",
    "sentence_transformers.models.Pooling": "pooling",
    "sentence_transformers.models.Dense": "dense",
    "sentence_transformers.models.Normalize": "normalize",
}
POOLING_MODES = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_lasttoken": "last_token",
}
OTHER_POOLING_KEYS = ("pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens")
ACTIVATION_CLASSES = {"torch.nn.modules.linear.Identity": "identity"}
IDENTITY_CLASS = "torch.nn.modules.linear.Identity"
ST_CONFIG = "config_sentence_transformers.json"


@dataclasses.dataclass(frozen=True)
class DenseModule:
    path: str  # the module folder relative to the model folder, e.g. "2_Dense"
    spec: DenseSpec


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """What a sentence-transformers folder computes after the Transformer."""

    pooling: str | None  # None: no Pooling module
    dense: tuple[DenseModule, ...]
    normalize: bool
    prompts: dict[str, str]


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{what} '{path}' is missing") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{what} '{path}' is not valid JSON: {e}") from None


def read_modules(folder: Path) -> list[dict] | None:
    """modules.json's entries, or None when the folder is not a sentence-transformers model."""
    path = folder / "modules.json"
    if not path.is_file():
        return None
    modules = _read_json(path, "modules.json")
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise ConfigError(f"'{path}' is not a list of modules")
    return modules


def read_pipeline(folder: Path) -> Pipeline | None:
    """The pipeline of the sentence-transformers folder `folder`, or None when it has no modules.json.

    Raises ConfigError for modules embbench cannot serve (an unknown type, a pooling other than
    cls/mean/last token, an activation other than identity, Normalize before a Dense layer).
    """
    modules = read_modules(folder)
    if modules is None:
        return None
    where = folder / "modules.json"
    pooling: str | None = None
    dense: list[DenseModule] = []
    normalize = False
    for i, m in enumerate(modules):
        kind = MODULE_TYPES.get(m.get("type", ""))
        if kind is None:
            raise ConfigError(
                f"'{where}' module {i} has type {m.get('type')!r}: embbench reproduces only "
                f"{', '.join(MODULE_TYPES)}"
            )
        path = str(m.get("path", ""))
        if kind == "transformer":
            if i != 0 or path != "":
                raise ConfigError(f"'{where}': the Transformer must be module 0 at path \"\", found module {i} at {path!r}")
            continue
        if normalize:
            raise ConfigError(f"'{where}': module {i} ({kind}) comes after Normalize; embbench normalises last")
        if kind == "pooling":
            if pooling is not None or dense:
                raise ConfigError(f"'{where}': module {i} is a second Pooling or comes after a Dense module")
            pooling = read_pooling(folder / path / "config.json")
        elif kind == "dense":
            if pooling is None:
                raise ConfigError(f"'{where}': Dense module {i} comes before any Pooling module")
            dense.append(DenseModule(path, read_dense_config(folder / path / "config.json")))
        else:
            normalize = True
    prompts: dict[str, str] = {}
    if (folder / ST_CONFIG).is_file():
        cfg = _read_json(folder / ST_CONFIG, ST_CONFIG)
        prompts = dict(cfg.get("prompts") or {})
    return Pipeline(pooling, tuple(dense), normalize, prompts)


def read_pooling(path: Path) -> str:
    cfg = _read_json(path, "Pooling config")
    modes = [mode for key, mode in POOLING_MODES.items() if cfg.get(key)]
    others = [key for key in OTHER_POOLING_KEYS if cfg.get(key)]
    if others or len(modes) != 1:
        raise ConfigError(
            f"'{path}' pools with {', '.join(modes + others) or 'nothing'}: embbench serves exactly one of "
            f"cls, mean, last token"
        )
    if cfg.get("include_prompt") is False:
        raise ConfigError(f"'{path}' has include_prompt false (the prompt is left out of pooling): not supported")
    return modes[0]


def read_dense_config(path: Path) -> DenseSpec:
    cfg = _read_json(path, "Dense config")
    activation_class = cfg.get("activation_function", IDENTITY_CLASS)
    activation = ACTIVATION_CLASSES.get(activation_class)
    if activation is None:
        raise ConfigError(f"'{path}' has activation_function {activation_class!r}: embbench serves only {IDENTITY_CLASS}")
    try:
        return DenseSpec(int(cfg["in_features"]), int(cfg["out_features"]), bool(cfg.get("bias", True)), activation)
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"'{path}' lacks in_features or out_features") from None


def check_pipeline(entry: ModelEntry, pipeline: Pipeline | None, origin: str) -> None:
    """models.yaml must state the pipeline the model folder `origin` defines; raises ConfigError naming
    the field and both values.

    Prompts: every models.yaml prompt must be in config_sentence_transformers.json with the same text;
    the model may define more (EmbeddingGemma has a dozen task prompts), embbench serves the listed ones.
    """
    where = f"models.yaml models.{entry.id}"
    if pipeline is None:
        if entry.dense:
            raise ConfigError(f"{where}.dense lists {len(entry.dense)} Dense layers but {origin} has no modules.json")
        if entry.prompts:
            raise ConfigError(f"{where}.prompts lists {', '.join(entry.prompts)} but {origin} has no {ST_CONFIG}")
        return
    if pipeline.pooling is not None and pipeline.pooling != entry.pooling:
        raise ConfigError(f"{where}.pooling is '{entry.pooling}' but the Pooling module in {origin} says '{pipeline.pooling}'")
    if len(pipeline.dense) != len(entry.dense):
        found = ", ".join(f"{d.path} ({d.spec.in_features}->{d.spec.out_features})" for d in pipeline.dense) or "none"
        raise ConfigError(
            f"{where}.dense lists {len(entry.dense)} Dense layers but modules.json in {origin} has "
            f"{len(pipeline.dense)}: {found}"
        )
    names = {"in_features": "in", "out_features": "out", "bias": "bias", "activation": "activation"}
    for i, (want, got) in enumerate(zip(entry.dense, pipeline.dense)):
        for attr, key in names.items():
            a, b = getattr(want, attr), getattr(got.spec, attr)
            if a != b:
                raise ConfigError(
                    f"{where}.dense[{i}].{key} is {_show(a)} but {got.path}/config.json in {origin} says {_show(b)}"
                )
    for name, text in entry.prompts.items():
        if name not in pipeline.prompts:
            known = ", ".join(pipeline.prompts) or "none"
            raise ConfigError(
                f"{where}.prompts.{name} is {text!r} but {ST_CONFIG} in {origin} has no prompt '{name}' (it has: {known})"
            )
        if pipeline.prompts[name] != text:
            raise ConfigError(
                f"{where}.prompts.{name} is {text!r} but {ST_CONFIG} in {origin} says {pipeline.prompts[name]!r}"
            )


def _show(value) -> str:
    return json.dumps(value) if isinstance(value, (bool, str)) else str(value)


def copy_module_folders(src: Path, dest: Path, pipeline: Pipeline | None) -> None:
    """Copies the Pooling and Dense module folders; Dense weights saved as .bin become model.safetensors."""
    modules = read_modules(src) or []
    for m in modules:
        path = str(m.get("path", ""))
        if not path or MODULE_TYPES.get(m.get("type", "")) not in ("pooling", "dense"):
            continue
        (dest / path).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / path / "config.json", dest / path / "config.json")
    for d in (pipeline.dense if pipeline else ()):
        weights = src / d.path / "model.safetensors"
        if weights.is_file():
            shutil.copyfile(weights, dest / d.path / "model.safetensors")
        elif (src / d.path / "pytorch_model.bin").is_file():
            _resave_dense(src / d.path / "pytorch_model.bin", dest / d.path / "model.safetensors")
        else:
            raise ConfigError(f"'{src / d.path}' has no model.safetensors or pytorch_model.bin")
        check_dense_weights(dest / d.path / "model.safetensors", d.spec)


def _resave_dense(bin_path: Path, out: Path) -> None:
    import torch
    from safetensors.torch import save_file

    state = torch.load(str(bin_path), map_location="cpu", weights_only=True)
    save_file({k: v.contiguous() for k, v in state.items() if k.startswith("linear.")}, str(out))


def check_dense_weights(path: Path, spec: DenseSpec) -> None:
    """linear.weight is [out, in] and linear.bias is there exactly when bias is true."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        keys = set(f.keys())
        if "linear.weight" not in keys:
            raise ConfigError(f"'{path}' has no tensor linear.weight (it has {', '.join(sorted(keys))})")
        shape = list(f.get_slice("linear.weight").get_shape())
    if shape != [spec.out_features, spec.in_features]:
        raise ConfigError(f"'{path}' linear.weight is {shape}: expected [{spec.out_features}, {spec.in_features}]")
    if spec.bias != ("linear.bias" in keys):
        raise ConfigError(f"'{path}': bias is {_show(spec.bias)} in its config but linear.bias is "
                          f"{'present' if 'linear.bias' in keys else 'absent'}")


def dense_paths(pipeline: Pipeline | None) -> list[str]:
    """The Dense folders as embbench_model.json names them (relative to the model folder)."""
    return [f"pytorch/{d.path}" for d in (pipeline.dense if pipeline else ())]


def write_layout(entry: ModelEntry, folder: Path, hidden: int, seed: int) -> None:
    """Writes a sentence-transformers layout for `entry` into `folder` (an embedded model's pytorch/):
    modules.json, sentence_bert_config.json, config_sentence_transformers.json, 1_Pooling/, one
    <k>_Dense/ per Dense layer with random weights from `seed`, and a Normalize module."""
    import torch
    from safetensors.torch import save_file

    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]

    def add(path: str, kind: str) -> None:
        modules.append({"idx": len(modules), "name": str(len(modules)), "path": path,
                        "type": f"sentence_transformers.models.{kind}"})

    add("1_Pooling", "Pooling")
    pooling = {"word_embedding_dimension": hidden, **{k: entry.pooling == v for k, v in POOLING_MODES.items()},
               **{k: False for k in OTHER_POOLING_KEYS}, "include_prompt": True}
    _write(folder / "1_Pooling" / "config.json", pooling)
    for i, spec in enumerate(entry.dense):
        path = f"{i + 2}_Dense"
        add(path, "Dense")
        _write(folder / path / "config.json", {"in_features": spec.in_features, "out_features": spec.out_features,
                                               "bias": spec.bias, "activation_function": IDENTITY_CLASS})
        gen = torch.Generator().manual_seed(seed + 1 + i)
        # std 1/sqrt(in) keeps the activations' scale; the weights are random like the rest of the twin.
        tensors = {"linear.weight": torch.randn(spec.out_features, spec.in_features, generator=gen) / spec.in_features ** 0.5}
        if spec.bias:
            tensors["linear.bias"] = torch.randn(spec.out_features, generator=gen) * 0.1
        save_file(tensors, str(folder / path / "model.safetensors"))
    add(f"{len(entry.dense) + 2}_Normalize", "Normalize")
    _write(folder / "modules.json", modules)
    _write(folder / "sentence_bert_config.json", {"max_seq_length": entry.max_seq_length, "do_lower_case": False})
    _write(folder / ST_CONFIG, {"prompts": dict(entry.prompts), "default_prompt_name": None,
                                "similarity_fn_name": "cosine", "model_type": "SentenceTransformer"})


def _write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
