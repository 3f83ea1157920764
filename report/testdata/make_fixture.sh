#!/usr/bin/env bash
# Remakes the fixture run the report tests render: a real run of fixture_config.yaml on this host,
# then run.json, the cell files and the per-request logs are kept (oha's raw outputs and the pass
# records, which the cells repeat, are left out).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# The run exits 1 because PyTorch's cells fail (by design, see fixture_config.yaml): go on if it wrote a run.
"$root/embbench" --config "$here/fixture_config.yaml" --results "$tmp" run || true
run_dir="$(ls -d "$tmp"/*/run.json | head -1 | xargs dirname)"
rm -rf "$here/fixture-run"
mkdir -p "$here/fixture-run"
cp "$run_dir/run.json" "$here/fixture-run/"
cp -r "$run_dir/cells" "$here/fixture-run/"
mkdir -p "$here/fixture-run/logs"
cp -r "$run_dir/logs/requests" "$here/fixture-run/logs/"
echo "fixture written: $here/fixture-run ($(ls "$here/fixture-run/cells" | wc -l) cells)"
