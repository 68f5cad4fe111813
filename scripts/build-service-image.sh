#!/usr/bin/env bash
# Build the hpc-wps service image from the Dockerfile with Podman.
#
# Usage: scripts/build-service-image.sh [IMAGE]   (default localhost/hpc-wps/service:latest)
#   BASE=...   base image (default docker.io/library/debian:bookworm-slim, which
#              `scripts/podman.sh images debian` makes locally: no registry here)
#
# apt and pip inside the build reach their mirrors through the host's network;
# pip trusts the machine's CA bundle, mounted read-only into the build at
# /run/hpc-wps-build-ca.crt (the image's ca-certificates package owns the usual
# path, so a mount there breaks its installation).
# `--format docker` keeps the HEALTHCHECK (the OCI format has none).
set -euo pipefail

readonly IMAGE=${1:-localhost/hpc-wps/service:latest}
readonly BASE=${BASE:-docker.io/library/debian:bookworm-slim}
readonly CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly ROOT

log() { printf '[service-image] %s\n' "$*" >&2; }

if ! podman image exists "$BASE"; then
    if [[ $BASE == docker.io/library/debian:bookworm-slim ]]; then
        log "$BASE is missing: building it (scripts/podman.sh images debian)"
        "$ROOT/scripts/podman.sh" images debian
    else
        log "ERROR: base image $BASE is missing"
        exit 1
    fi
fi

mounts=()
[[ -r $CA_BUNDLE ]] && mounts+=(-v "$CA_BUNDLE:/run/hpc-wps-build-ca.crt:ro")
t0=$(date +%s)
podman build --format docker --network=host --pull=never "${mounts[@]}" \
    --build-arg "BASE=$BASE" -t "$IMAGE" -f "$ROOT/Dockerfile" "$ROOT" 9>&-
log "built $IMAGE in $(($(date +%s) - t0)) s"
