#!/usr/bin/env bash
# Creates or updates the host venv for the Python server's tests: /work/main/.venv-server (i.e.
# <repo>/.venv-server) with requirements/dev.lock (the server, the ONNX Runtime backend, pytest).
# Idempotent: does nothing when the venv already matches the lock.
#
# usage: docker/python/install.sh   (env PYTHON: interpreter to build the venv with, default python3.11)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="$repo/.venv-server"
lock="$here/requirements/dev.lock"
python="${PYTHON:-python3.11}"
stamp="$venv/.dev.lock.sha256"
want="$(sha256sum "$lock" | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "install.sh: $venv is up to date" >&2
  exit 0
fi
command -v "$python" >/dev/null || { echo "install.sh: $python not found: set PYTHON to a Python 3.11+ interpreter" >&2; exit 2; }
[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q --no-deps -r "$lock"
"$venv/bin/pip" check
echo "$want" >"$stamp"
echo "install.sh: $venv ready" >&2
