#!/usr/bin/env bash
# Build the images of the example container processes locally with Podman
# (no registry is reachable): only when missing or when their sources changed.
#
#   localhost/hpc-wps/examples:latest   scripts/images/examples (FROM the local
#                                       busybox image; wordcount, split-text)
#
# Usage: scripts/build-example-images.sh [--force]
# Needs localhost/hpc-wps/busybox:latest: `scripts/podman.sh images busybox`
# builds it (this script calls it when the image is missing). No running API
# service is needed. config/containers.example.toml declares the processes.
set -euo pipefail

readonly IMAGE=localhost/hpc-wps/examples:latest
readonly BASE=localhost/hpc-wps/busybox:latest
readonly STAMP_LABEL=org.hpc-wps.context-sha256
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly HERE
readonly CONTEXT=$HERE/images/examples

log() { printf '[example-images] %s\n' "$*" >&2; }
die() { printf '[example-images] ERROR: %s\n' "$*" >&2; exit 1; }

force=0
for arg in "$@"; do
    case $arg in
        --force) force=1 ;;
        *) die "unknown argument '$arg' (--force)" ;;
    esac
done

command -v podman >/dev/null || die "podman is missing: scripts/podman.sh start installs it"
if ! podman image exists "$BASE"; then
    log "$BASE is missing: building it"
    "$HERE/podman.sh" images busybox
fi

# The build context's names, modes and bytes: a changed script rebuilds the
# image, an unchanged one keeps it.
stamp=$(tar -C "$CONTEXT" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -c . \
    | sha256sum | cut -d' ' -f1)

if ((!force)) && podman image exists "$IMAGE"; then
    current=$(podman image inspect --format "{{index .Labels \"$STAMP_LABEL\"}}" "$IMAGE" 2>/dev/null || true)
    if [[ $current == "$stamp" ]]; then
        log "$IMAGE up to date"
        exit 0
    fi
fi

t0=$(date +%s.%N)
podman build -q --pull=never --label "$STAMP_LABEL=$stamp" -t "$IMAGE" "$CONTEXT" >/dev/null
# Smoke test: both scripts run as nobody on a read-only root with no network.
out=$(printf 'b a b\n' | podman run --rm -i --network=none --read-only --user 65534:65534 \
    --tmpfs /tmp --tmpfs /outputs:mode=1777 "$IMAGE" sh -c 'cat >/tmp/in; wordcount /tmp/in' 9>&-)
[[ $out == '{"b": 2, "a": 1}' ]] || die "smoke test of wordcount failed: $out"
out=$(printf '1\n2\n3\n' | podman run --rm -i --network=none --read-only --user 65534:65534 \
    --tmpfs /tmp --tmpfs /outputs:mode=1777 "$IMAGE" sh -c 'cat >/tmp/in; split-text 1 /tmp/in' 9>&-)
[[ $out == 3 ]] || die "smoke test of split-text failed: $out"
log "built $IMAGE in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
