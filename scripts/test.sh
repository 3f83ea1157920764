#!/usr/bin/env bash
# The one test command (README, .ci/run): every suite of the project, then the end-to-end quick run.
# Each suite runs even when an earlier one failed; the last line counts suites passed and failed.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here" || exit 1
export PATH="$here/tools/deno/node_modules/.bin:$HOME/.cargo/bin:$PATH"
passed=0
failed=0
failed_names=()
suite() {
  local name="$1"
  shift
  printf '\n==> %s: %s\n' "$name" "$*" >&2
  local t0=$SECONDS
  if "$@"; then
    passed=$((passed + 1))
    printf '==> %s: passed in %ss\n' "$name" "$((SECONDS - t0))" >&2
  else
    failed=$((failed + 1))
    failed_names+=("$name")
    printf '==> %s: FAILED after %ss\n' "$name" "$((SECONDS - t0))" >&2
  fi
}

# The offline models first (the two encoders and the decoder twins): the conformance tests and the image suites serve them.
suite "convert tiny-xlmr minilm tiny-qwen3 tiny-gemma3" ./embbench convert tiny-xlmr minilm tiny-qwen3 tiny-gemma3
# Harness: format, lint, type check, unit and Docker end-to-end tests.
suite harness deno task check
# The EC2 host's Terraform (fmt, validate, test on a mocked provider), checkov and shellcheck.
suite terraform bash terraform/test.sh
# Framework and conversion suites, where they exist.
for t in docker/convert/test.sh docker/python/test.sh docker/rust/test.sh docker/onnx-cpp/test.sh; do
  [[ -f "$t" ]] && suite "$(dirname "$t")" bash "$t"
done
# End to end: convert, build, verify, run and report the small model through every framework image.
quick_report="$(mktemp)"
trap 'rm -f "$quick_report"' EXIT
quick_run() { ./embbench all --quick | tee "$quick_report"; }
suite "all --quick" quick_run
# Its report, as a reader opens it: from disk, offline, in headless Chromium, every chart drawn.
suite "quick report in Chromium" deno run --allow-all scripts/check_report.ts "$(tail -1 "$quick_report" 2>/dev/null)"
# Every image against both offline models, and a second build of every image from the layer cache.
suite "verify tiny-xlmr minilm tiny-qwen3 tiny-gemma3" ./embbench verify --model tiny-xlmr minilm tiny-qwen3 tiny-gemma3
suite "rebuild from cache" bash scripts/check_rebuild.sh

printf '\n' >&2
((failed)) && printf 'failed suites: %s\n' "${failed_names[*]}" >&2
echo "suites: $passed passed, $failed failed"
((failed == 0))
