#!/usr/bin/env bash
# Builds every framework image that has a Dockerfile a second time and checks the layer cache:
# the rebuild must take seconds (under 20 s an image, 60 s in all), which only cache hits allow.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
fws=()
for f in torch onnxruntime onnx-cpp ort-rust candle openvino; do
  [[ -f "docker/$f/Dockerfile" ]] && fws+=("$f")
done
t0=$SECONDS
out="$(./embbench build "${fws[@]}" 2>&1)"
echo "$out" | grep -E "\] built " >&2
slow=$(echo "$out" | grep -E "\] built " | awk '{ for (i = 1; i <= NF; i++) if ($i == "in") { if ($(i + 1) + 0 >= 20) print } }')
echo "rebuilt ${#fws[@]} images in $((SECONDS - t0)) s" >&2
[[ -z "$slow" ]] || { echo "not served from the cache: $slow" >&2; exit 1; }
((SECONDS - t0 < 60))
