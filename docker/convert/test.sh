#!/usr/bin/env bash
# Runs the convert tests with the convert venv (installing it first if needed).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=${EMBBENCH_VENV:-$root/.venv}
"$here/install.sh"
cd "$here"
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider tests "$@"
