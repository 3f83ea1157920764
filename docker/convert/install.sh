#!/usr/bin/env bash
# Creates the convert virtual environment (default: <repo>/.venv) from requirements.txt.
# A fast no-op when the venv already holds exactly these requirements.
#   EMBBENCH_VENV=/path   another venv location
#   PYTHON=python3.11     the interpreter to build it from (3.11 or newer)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=${EMBBENCH_VENV:-$root/.venv}
req=$here/requirements.txt
stamp=$venv/.embbench-convert-requirements
want="$(sha256sum "$req" | cut -d' ' -f1) $here"

if [[ -x $venv/bin/python && -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
  echo "convert venv is up to date: $venv" >&2
  exit 0
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "error: $python is $("$python" --version 2>&1); the convert venv needs Python 3.11 or newer" >&2
  exit 2
fi

echo "creating the convert venv in $venv (about 3 GB of wheels, 6.5 GB installed)" >&2
"$python" -m venv "$venv"
# --no-deps: requirements.txt is a complete pin list that leaves out triton on purpose (see README.md).
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$req"
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$here" > "$site/embbench_convert.pth"   # python -m embbench_convert works from any folder
echo "$want" > "$stamp"
echo "convert venv ready: $venv" >&2
