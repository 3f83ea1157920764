#!/usr/bin/env bash
# The three ONNX Runtime frontends' in-process Session::Run times on the same graph, inputs and session
# options (docker/CONTRACT.md): each image's own bench-run mode, one pinned CPU, batch 1 at two sequence
# lengths, then batch 8 at the shorter one (what the batcher can win). Prints one JSON line per measurement.
# Usage: scripts/ort_frontends.sh [MODEL (minilm)] [CPU (1)] [RUNS (200)]
# Needs: the model converted (./embbench convert MODEL) and the images built (./embbench build).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model="${1:-minilm}"
cpu="${2:-1}"
runs="${3:-200}"
dir="$here/models/$model"
[[ -f "$dir/embbench_model.json" ]] || { echo "no converted model at $dir: run ./embbench convert $model" >&2; exit 2; }
for p in seq32_b1 seq128_b1 seq32_b8; do
  [[ -f "$dir/payloads/$p.json" ]] || { echo "no payload $dir/payloads/$p.json: run ./embbench convert $model" >&2; exit 2; }
done
run() { # image, payload, command...
  local image="$1" payload="$2" entrypoint="$3"
  shift 3
  docker run --rm --network none --cpuset-cpus "$cpu" -e MODEL_DIR=/model -e NUM_THREADS=1 \
    -v "$dir:/model:ro" --entrypoint "$entrypoint" "embbench/$image:latest" "$@" --payload "/model/payloads/$payload.json" --runs "$runs" |
    tail -1 | python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({"frontend": sys.argv[1], "payload": sys.argv[2], **{k: d[k] for k in ("median_ms", "p10_ms", "p90_ms") if k in d}, **({"cpu_median_ms": d["cpu_median_ms"]} if "cpu_median_ms" in d else {})}))' "$image" "$payload"
}
for payload in seq32_b1 seq128_b1 seq32_b8; do
  run onnxruntime "$payload" python -m embbench_server.bench_run --backend onnxruntime
  run onnx-cpp "$payload" /usr/local/bin/embbench-onnx-cpp --bench-run
  run ort-rust "$payload" embbench-ort --bench-run
done
