#!/usr/bin/env bash
# Tests the C++ ONNX Runtime server; the host needs only Docker.
#  1. builds the Dockerfile's `test` stage and runs ctest in it: C++ unit tests, token-id parity with
#     HF tokenizers (fixtures, data/corpus/*.txt, and models/<m> for xlm-roberta/bert models when
#     present), the engine on a toy graph, and the server binary end to end;
#  2. builds the runtime image and checks it serves the toy model (its libraries are all there).
# usage: docker/onnx-cpp/test.sh      env: BASE_IMAGE (default embbench/base:trixie)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
docker_dir="$(dirname "$here")"
repo="$(dirname "$docker_dir")"
base="${BASE_IMAGE:-embbench/base:trixie}"
test_tag="embbench/onnx-cpp:test"
run_tag="embbench/onnx-cpp:dev"

build() {  # build TARGET TAG
  local t0=$SECONDS
  docker build --network host --target "$1" --build-arg BASE_IMAGE="$base" -f "$here/Dockerfile" \
    -t "$2" "$docker_dir" >&2
  echo "onnx-cpp test: built $2 in $((SECONDS - t0)) s" >&2
}

build test "$test_tag"
mounts=()
if compgen -G "$repo/data/corpus/*.txt" >/dev/null; then
  mounts+=(-v "$repo/data/corpus:/corpus:ro" -e EMBBENCH_CORPUS=/corpus)
fi
if [[ -d "$repo/models" ]]; then
  mounts+=(-v "$repo/models:/models:ro" -e EMBBENCH_MODELS=/models)
fi
docker run --rm --network host "${mounts[@]}" "$test_tag" ctest --test-dir /build -V

# The runtime image: serve the toy model folder taken from the test image, probe it from the test image.
build runtime "$run_tag"
work="$(mktemp -d)"
name="embbench-onnx-cpp-smoke-$$"
cleanup() { docker rm -f "$name" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
docker run --rm "$test_tag" tar -C /fixtures -c toy | tar -x -C "$work"
chmod -R a+rX "$work"
# A free port unless told: a fixed one may be held by another server on this host, which would answer instead.
port="${SMOKE_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
docker run -d --name "$name" --network host -e MODEL_DIR=/model -e NUM_THREADS=1 -e PORT="$port" \
  -v "$work/toy:/model:ro" "$run_tag" >/dev/null
docker run --rm -i --network host "$test_tag" python3 - "$port" <<'PY'
import json, sys, time, urllib.request, urllib.error
port = sys.argv[1]
base = f"http://127.0.0.1:{port}"
deadline = time.time() + 30
while True:
    try:
        with urllib.request.urlopen(base + "/health", timeout=2) as r:
            if r.status == 200:
                break
    except (urllib.error.URLError, OSError):
        pass
    if time.time() > deadline:
        sys.exit("runtime image: /health did not turn 200 within 30 s")
    time.sleep(0.1)
req = urllib.request.Request(base + "/embed", data=json.dumps({"inputs": ["hello", ""]}).encode(),
                             headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=10) as r:
    rows = json.load(r)
assert len(rows) == 2 and len(rows[0]) == 8, rows
with urllib.request.urlopen(base + "/info", timeout=5) as r:
    info = json.load(r)
assert info["framework_version"].startswith("1.21"), info
print("runtime image smoke: 1 passed, 0 failed")
PY
docker logs "$name" 2>&1 | tail -n 3 >&2
echo "onnx-cpp test: runtime image $(docker image inspect -f '{{.Size}}' "$run_tag" | awk '{printf "%.0f MB", $1/1e6}')" >&2
