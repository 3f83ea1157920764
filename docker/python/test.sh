#!/usr/bin/env bash
# Runs the Python server's unit tests (a fake backend: no inference framework needed) in .venv-server,
# then the torch backend's model tests (tests_torch: tiny synthetic Qwen3/Gemma3) with a Python that has
# the torch image's torch and transformers: TORCH_TEST_PYTHON, else the project's convert venv
# (<repo>/.venv, made by scripts/install.sh); skipped with a note when neither has them.
# usage: docker/python/test.sh [pytest args...]   (the args go to the first suite)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bash "$here/install.sh"
cd "$here"
"$repo/.venv-server/bin/python" -m pytest -q -p no:cacheprovider tests "$@"
torch_python="${TORCH_TEST_PYTHON:-$repo/.venv/bin/python}"
if [[ -x "$torch_python" ]] && "$torch_python" -c 'import torch, transformers, safetensors, tokenizers, pytest' 2>/dev/null; then
  exec "$torch_python" -m pytest -q -p no:cacheprovider tests_torch
fi
echo "test.sh: tests_torch skipped: $torch_python lacks torch/transformers (set TORCH_TEST_PYTHON or run scripts/install.sh)" >&2
