#!/usr/bin/env bash
# Installs everything `./embbench all --quick` needs on a Debian/Ubuntu host, idempotently:
# Docker engine (Debian's docker.io, started when no engine answers), debootstrap for offline base
# images, Deno (pinned, from the npm package), the harness's npm dependencies (from deno.lock), oha
# (pinned, from crates.io) and the Python environments for native conversion and the server tests.
# The test suite's linters too: shellcheck (Debian) and checkov (PyPI, hashed lock, tools/checkov/).
# Re-running it is fast: each step checks first.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
OHA_VERSION="$(sed -n 's/^export const OHA_VERSION = "\(.*\)";/\1/p' lib/versions.ts)"
step() { printf '\n==> %s\n' "$*" >&2; }
sudo_() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

step "system packages (docker.io, debootstrap, util-linux, python3-venv, chromium)"
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v taskset >/dev/null || need+=(util-linux)
command -v npm >/dev/null || need+=(npm)
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)
# Chromium opens reports in the tests. Ubuntu ships it as a snap only (no apt package), so there the
# browser checks skip instead.
if [[ ! -x /usr/bin/chromium ]] && ! grep -qx 'ID=ubuntu' /etc/os-release 2>/dev/null; then need+=(chromium); fi
if ((${#need[@]})); then
  sudo_ apt-get update -qq
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
else
  echo "present" >&2
fi

step "Docker engine"
if docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  echo "answering: $(docker version --format '{{.Server.Version}}')" >&2
else
  if command -v systemctl >/dev/null && systemctl list-unit-files docker.service >/dev/null 2>&1 \
    && sudo_ systemctl start docker 2>/dev/null; then
    echo "started with systemctl" >&2
  else
    # No init system (containers, CI sandboxes): start dockerd directly. The default bridge needs
    # iptables and has no DNS on such hosts; embbench uses host networking throughout.
    sudo_ mkdir -p /var/log
    sudo_ bash -c 'nohup dockerd --iptables=false --bridge=none >/var/log/embbench-dockerd.log 2>&1 &'
  fi
  for _ in $(seq 1 60); do
    docker version --format '{{.Server.Version}}' >/dev/null 2>&1 && break
    sleep 1
  done
  docker version --format 'engine {{.Server.Version}}' >&2 || {
    echo "Docker engine did not start; see /var/log/embbench-dockerd.log" >&2
    tail -n 20 /var/log/embbench-dockerd.log >&2 || true
    exit 1
  }
fi

step "Deno (npm package, pinned in tools/deno/package.json)"
(cd tools/deno && npm ci --no-audit --no-fund --loglevel=error >&2)
deno="$here/tools/deno/node_modules/.bin/deno"
"$deno" --version | head -n 1 >&2
"$deno" install --frozen --quiet >&2

step "oha $OHA_VERSION (crates.io)"
export PATH="$HOME/.cargo/bin:$PATH"
if [[ "$(oha --version 2>/dev/null || true)" == "oha $OHA_VERSION" ]]; then
  echo "present" >&2
else
  command -v cargo >/dev/null || { echo "cargo is missing: install Rust (https://rustup.rs) and re-run" >&2; exit 1; }
  cargo install --locked "oha@$OHA_VERSION" >&2
fi

for part in docker/convert docker/python; do
  if [[ -x "$part/install.sh" ]]; then
    step "Python environment for $part"
    bash "$part/install.sh" >&2
  fi
done

step "test tools: shellcheck (Debian), checkov (PyPI, tools/checkov/venv from its hashed lock)"
if ! command -v shellcheck >/dev/null; then
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >&2 \
    || { sudo_ apt-get update -qq && sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >&2; }
fi
shellcheck --version | sed -n 's/^version: /shellcheck /p' >&2
checkov_venv="$here/tools/checkov/venv"
checkov_lock="$here/tools/checkov/requirements.lock"
checkov_want="$(sha256sum "$checkov_lock" | cut -d' ' -f1)"
if [[ -x "$checkov_venv/bin/checkov" && "$(cat "$checkov_venv/.lock.sha256" 2>/dev/null)" == "$checkov_want" ]]; then
  echo "present" >&2
else
  # The lock pins every package with its hashes; 3.11 is the Python it was resolved for.
  checkov_python="$(command -v python3.11 || command -v python3)"
  rm -rf "$checkov_venv"
  "$checkov_python" -m venv "$checkov_venv"
  "$checkov_venv/bin/pip" install -q --disable-pip-version-check --require-hashes --no-deps -r "$checkov_lock" >&2
  "$checkov_venv/bin/pip" check >&2
  echo "$checkov_want" >"$checkov_venv/.lock.sha256"
  "$checkov_venv/bin/checkov" --version | sed 's/^/checkov /' >&2
fi

step "done: run ./embbench doctor to check, ./embbench all --quick to try"
