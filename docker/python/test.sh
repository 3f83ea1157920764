#!/usr/bin/env bash
# Runs the Python server's unit tests (a fake backend: no inference framework needed) in .venv-server.
# usage: docker/python/test.sh [pytest args...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bash "$here/install.sh"
cd "$here"
exec "$here/../../.venv-server/bin/python" -m pytest -q -p no:cacheprovider tests "$@"
