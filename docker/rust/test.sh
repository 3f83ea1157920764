#!/usr/bin/env bash
# Unit tests of the Rust servers (docker/rust): HTTP layer, request validation, error bodies,
# tokenization, Candle pooling. Needs cargo (Rust >= 1.85) and crates.io; no model, no ONNX Runtime.
# usage: docker/rust/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
exec nice -n 10 cargo test --locked --workspace "$@"
