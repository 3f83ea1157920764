#!/usr/bin/env bash
# Builds every configured framework image a second time and checks the layer cache:
# the rebuild must take seconds (under 20 s an image, 60 s in all), which only cache hits allow.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
t0=$SECONDS
out="$(./embbench build 2>&1)"
built="$(echo "$out" | grep -E "\] built " || true)"
echo "$built" >&2
slow=$(echo "$built" | awk '{ for (i = 1; i <= NF; i++) if ($i == "in") { if ($(i + 1) + 0 >= 20) print } }')
echo "rebuilt $(echo "$built" | grep -c .) images in $((SECONDS - t0)) s" >&2
[[ -z "$slow" ]] || { echo "not served from the cache: $slow" >&2; exit 1; }
((SECONDS - t0 < 60))
