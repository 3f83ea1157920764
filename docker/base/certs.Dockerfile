# Adds the host's CA certificates (staged by `embbench build` into docker/.certs) to a base image
# pulled from a registry, so apt, pip, cargo and npm work behind a TLS-intercepting proxy. The files
# stay under /usr/local/share/ca-certificates, where a later `update-ca-certificates` (run when a
# Dockerfile installs ca-certificates) picks them up again instead of dropping them.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY .certs/ /usr/local/share/ca-certificates/embbench/
RUN set -e; mkdir -p /etc/ssl/certs; \
    for f in /usr/local/share/ca-certificates/embbench/*.crt; do [ -e "$f" ] && cat "$f" >> /etc/ssl/certs/ca-certificates.crt; done; \
    if command -v update-ca-certificates >/dev/null; then update-ca-certificates; fi
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
    CARGO_HTTP_CAINFO=/etc/ssl/certs/ca-certificates.crt \
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
