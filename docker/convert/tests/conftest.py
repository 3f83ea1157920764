"""Shared fixtures: real conversions through the real CLI, made once per test session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

CONVERT_DIR = Path(__file__).resolve().parents[1]
# In-process imports must see the same embbench_convert as the CLI subprocesses below, even where
# another copy is on the path (the image's /opt/embbench/convert).
sys.path.insert(0, str(CONVERT_DIR))
REPO = CONVERT_DIR.parents[1]
MODELS_FILE = REPO / "models.yaml"
CORPUS_DIR = REPO / "data" / "corpus"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def summary(self) -> dict:
        return json.loads(self.stdout.strip().splitlines()[-1])


def run_cli(*args: str, env: dict | None = None, timeout: float = 600) -> Run:
    """Runs `python -m embbench_convert ARGS` in a fresh process, as the Deno wrapper does."""
    full_env = {**os.environ, "PYTHONPATH": str(CONVERT_DIR), **(env or {})}
    start = time.monotonic()
    p = subprocess.run(
        [sys.executable, "-m", "embbench_convert", *args],
        capture_output=True, text=True, env=full_env, timeout=timeout, cwd=REPO,
    )
    return Run(p.returncode, p.stdout, p.stderr, time.monotonic() - start)


def convert(model: str, out: Path, *extra: str, env: dict | None = None) -> Run:
    return run_cli("convert", "--model", model, "--models-file", str(MODELS_FILE), "--out", str(out),
                   "--corpus-dir", str(CORPUS_DIR), *extra, env=env)


def converted(tmp_path_factory, model: str, name: str, *extra: str) -> Path:
    out = tmp_path_factory.mktemp(name) / model
    run = convert(model, out, *extra)
    assert run.returncode == 0, f"convert {model} failed:\n{run.stderr}\n{run.stdout}"
    return out


@pytest.fixture(scope="session")
def tiny_xlmr(tmp_path_factory) -> Path:
    return converted(tmp_path_factory, "tiny-xlmr", "run1", "--fp16")


@pytest.fixture(scope="session")
def tiny_xlmr_again(tmp_path_factory) -> Path:
    return converted(tmp_path_factory, "tiny-xlmr", "run2", "--fp16")


@pytest.fixture(scope="session")
def minilm(tmp_path_factory) -> Path:
    return converted(tmp_path_factory, "minilm", "minilm")


def tree_hashes(root: Path) -> dict[str, str]:
    import hashlib

    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="session")
def tiny_qwen3(tmp_path_factory) -> Path:
    return converted(tmp_path_factory, "tiny-qwen3", "tiny-qwen3")


@pytest.fixture(scope="session")
def tiny_gemma3(tmp_path_factory) -> Path:
    return converted(tmp_path_factory, "tiny-gemma3", "tiny-gemma3")
