"""Hashes, the inputs fingerprint, the up-to-date check and atomic replacement of a model folder.

Nothing here imports torch, so an up-to-date check answers in well under a second for small models.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MANIFEST = "manifest.json"
MODEL_JSON = "embbench_model.json"
SCHEMA = 1

TOOLS = (
    "torch",
    "transformers",
    "tokenizers",
    "sentencepiece",
    "onnx",
    "onnxruntime",
    "openvino",
    "safetensors",
    "numpy",
    "huggingface-hub",
    "sentence-transformers",
)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def hash_tree(root: Path) -> dict[str, str]:
    """sha256 of every file under `root` except the manifest, keyed by its posix relative path."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            out[p.relative_to(root).as_posix()] = sha256_file(p)
    return out


def tool_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TOOLS + extra:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def converter_sha256() -> str:
    """One hash over this package's source: changing the converter invalidates earlier outputs."""
    h = hashlib.sha256()
    for p in sorted(Path(__file__).parent.glob("*.py")):
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def read_manifest(model_dir: Path) -> dict | None:
    try:
        return json.loads((model_dir / MANIFEST).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def up_to_date_reason(model_dir: Path, inputs: dict, required: list[str]) -> str | None:
    """None when `model_dir` holds a complete conversion of exactly `inputs`, else why not."""
    manifest = read_manifest(model_dir)
    if manifest is None:
        return "no readable manifest.json"
    if manifest.get("schema") != SCHEMA:
        return "manifest schema differs"
    if manifest.get("inputs") != inputs:
        changed = sorted(k for k in set(inputs) | set(manifest.get("inputs") or {})
                         if (manifest.get("inputs") or {}).get(k) != inputs.get(k))
        return f"inputs changed: {', '.join(changed)}"
    if not all(f.get("passed") for f in (manifest.get("parity") or {}).values()) or not manifest.get("parity"):
        return "the recorded parity gate did not pass"
    files = manifest.get("files") or {}
    missing = [r for r in required if r not in files]
    if missing:
        return f"manifest lacks {', '.join(missing)}"
    for rel, digest in files.items():
        p = model_dir / rel
        if not p.is_file():
            return f"'{rel}' is missing"
        if sha256_file(p) != digest:
            return f"'{rel}' does not match its recorded sha256"
    return None


def write_json(path: Path, data: dict) -> None:
    """Writes JSON through a temporary file and a rename, so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def staging_dir(target: Path) -> Path:
    """A fresh temporary folder beside `target` (same file system, so the final rename is atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    tmp.mkdir()
    return tmp


def replace_dir(staged: Path, target: Path) -> None:
    """Moves `staged` to `target`, replacing an older `target`.

    The old folder is first renamed aside; at no moment does `target` hold a mix of old and new.
    """
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        os.rename(target, old)
    os.rename(staged, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def staged(target: Path) -> Iterator[Path]:
    """A fresh folder to write `target` into: it replaces `target` when the block ends, and is
    removed if the block fails, so `target` is always either the old or the complete new folder."""
    tmp = staging_dir(target)
    try:
        yield tmp
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
