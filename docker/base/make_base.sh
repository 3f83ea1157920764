#!/usr/bin/env bash
# Builds the embbench base image (Debian trixie, minbase) without any container registry:
# debootstrap from the host's own Debian mirror, the host's CA certificates baked in, then
# `docker import`. Used where `docker pull` cannot work; on hosts that reach a registry the
# Dockerfiles take the official image through their BASE_IMAGE build argument instead.
#
# usage: make_base.sh [IMAGE_TAG] [MIRROR]
#   IMAGE_TAG  default embbench/base:trixie
#   MIRROR     default: the first Debian mirror in the host's apt sources, else deb.debian.org
set -euo pipefail
tag="${1:-embbench/base:trixie}"
mirror="${2:-}"
if [[ -z "$mirror" ]]; then
  mirror="$(grep -hsoE '(URIs:|^deb)[[:space:]]+(\[[^]]*\][[:space:]]+)?https?://[^[:space:]]+/debian/?([[:space:]]|$)' \
    /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null | grep -oE 'https?://[^[:space:]]+' | head -n 1 || true)"
  mirror="${mirror:-http://deb.debian.org/debian}"
fi
command -v debootstrap >/dev/null || { echo "make_base: debootstrap is missing: apt-get install -y debootstrap" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "make_base: debootstrap needs root" >&2; exit 2; }
root="$(mktemp -d /tmp/embbench-base.XXXXXX)"
trap 'rm -rf "$root"' EXIT
echo "make_base: debootstrap trixie from $mirror into $root" >&2
debootstrap --variant=minbase --include=ca-certificates trixie "$root" "$mirror" >&2
# The host's CA certificates (a TLS-intercepting proxy's among them) so apt, pip, cargo and npm work.
if compgen -G "/usr/local/share/ca-certificates/*" >/dev/null; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp -r /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >&2
fi
echo "deb $mirror trixie main" >"$root/etc/apt/sources.list"
rm -f "$root/etc/apt/sources.list.d/"* 2>/dev/null || true
chroot "$root" apt-get clean
rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin
tar -C "$root" -c . | docker import \
  -c 'ENV LANG=C.UTF-8' \
  -c 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
  -c 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  -c 'ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt' \
  -c 'ENV CARGO_HTTP_CAINFO=/etc/ssl/certs/ca-certificates.crt' \
  -c 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
  -c 'CMD ["/bin/bash"]' - "$tag" >&2
echo "$tag"
