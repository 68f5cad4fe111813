#!/usr/bin/env bash
# Podman serving the Docker Engine API, and the local test images, for the
# container backend's tests and for development.
#
# Usage: scripts/podman.sh start|stop|status|env|images [busybox|debian|--no-debian]
#   start    install podman, runc, busybox-static (and curl, procps, charliecloud-runtime) if missing, write the
#            containers.conf drop-in, start `podman system service` on
#            unix:///run/hpc-wps/podman.sock (log: /var/log/hpc-wps-podman.log)
#            and wait until it answers /_ping. Quick when already running.
#   stop     stop the API service (containers and images are kept).
#   status   up/down and the list of images; exit 0 only when up.
#   env      `export` line for clients: eval "$(scripts/podman.sh env)"
#   images   build the test images that are missing (no registry to pull from):
#              localhost/hpc-wps/busybox:latest      (scripts/images/busybox)
#              docker.io/library/debian:bookworm-slim (debootstrap minbase;
#                                                      scripts/images/debian-bookworm-slim)
#              localhost/hpc-wps/examples:latest     (scripts/build-example-images.sh,
#                                                      with busybox; rebuilt when changed)
#            `images busybox` (or `images --no-debian`) builds only the first,
#            `images debian` only the second. Needs no running API service.
#
# Meant for a throw-away Debian 12 machine where we are root and nothing is
# started for us (no systemd, no registry, only the Debian and PyPI mirrors):
# CI and developers' machines. Facts behind the choices: the project's shared
# notes "Real backends on these machines", section on Podman 4.3.
set -euo pipefail

readonly RUN_DIR=/run/hpc-wps
readonly SOCKET=$RUN_DIR/podman.sock
readonly PIDFILE=$RUN_DIR/podman.pid
readonly LOCKFILE=$RUN_DIR/podman.lock
readonly LOGFILE=/var/log/hpc-wps-podman.log
# Podman 4.3 (containers/common 0.50) reads drop-ins from this directory after
# /usr/share/containers/containers.conf and /etc/containers/containers.conf, so
# the settings apply without rewriting a containers.conf someone else owns.
readonly CONF_DROPIN=/etc/containers/containers.conf.d/50-hpc-wps.conf
readonly PING_TIMEOUT=60

readonly BUSYBOX_IMAGE=localhost/hpc-wps/busybox:latest
readonly DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim
readonly DEBIAN_SUITE=bookworm
readonly DEBIAN_ROOTFS=/var/cache/hpc-wps/debian-$DEBIAN_SUITE-minbase
readonly ROOTFS_DONE=.hpc-wps-debootstrap-complete
readonly DEFAULT_MIRROR=http://deb.debian.org/debian

IMAGES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/images
readonly IMAGES_DIR

# charliecloud-runtime: ch-run, for container processes on Slurm with container_runtime = charliecloud.
readonly BASE_PACKAGES=(podman runc busybox-static curl procps charliecloud-runtime)

APT_UPDATED=0
TMP_CTX=""
trap 'if [[ -n $TMP_CTX ]]; then rm -rf "$TMP_CTX"; fi' EXIT

# --------------------------------------------------------------------------
# Helpers

log() { printf '[podman] %s\n' "$*" >&2; }
die() { printf '[podman] ERROR: %s\n' "$*" >&2; exit 1; }

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# Run a phase and print how long it took (CI logs show these lines).
timed() {
    local name=$1 t0
    shift
    t0=$(now)
    "$@"
    log "phase '$name' took $(elapsed "$t0") s"
}

need_root() {
    [[ $(id -u) == 0 ]] || die "must run as root (rootful Podman, apt-get)"
}

# Serialise start/stop/images of concurrent callers (fd 9 stays open until
# the script exits).
take_lock() {
    mkdir -p "$RUN_DIR"
    exec 9>"$LOCKFILE"
    flock -w 900 9 || die "could not lock $LOCKFILE within 900 s"
}

# --------------------------------------------------------------------------
# Packages

package_installed() {
    local status
    status=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)
    [[ $status == "install ok installed" ]]
}

# apt_candidates PACKAGE...: the package lists offer all of them.
apt_candidates() {
    local p candidate
    for p in "$@"; do
        candidate=$(apt-cache policy "$p" 2>/dev/null | awk '$1 == "Candidate:" { print $2 }')
        [[ -n $candidate && $candidate != "(none)" ]] || return 1
    done
}

# apt_install PACKAGE...: install those not installed yet (`apt-get update`
# at most once per run; another script may hold the dpkg lock meanwhile).
apt_install() {
    local missing=() p
    for p in "$@"; do
        package_installed "$p" || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    local apt=(apt-get -o DPkg::Lock::Timeout=600 -q -y) installed=0
    # Skip `apt-get update` when the package lists already know every
    # package (e.g. updated by an earlier run); update and retry on failure.
    if ((!APT_UPDATED)) && apt_candidates "${missing[@]}"; then
        log "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive "${apt[@]}" install --no-install-recommends \
            "${missing[@]}" >/dev/null && installed=1
    fi
    if ((!installed)); then
        if ((!APT_UPDATED)); then
            log "apt-get update"
            DEBIAN_FRONTEND=noninteractive "${apt[@]}" update >/dev/null
            APT_UPDATED=1
        fi
        log "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive "${apt[@]}" install --no-install-recommends \
            "${missing[@]}" >/dev/null
    fi
    for p in "${missing[@]}"; do
        package_installed "$p" || die "package $p still missing after apt-get install"
    done
}

install_base() { apt_install "${BASE_PACKAGES[@]}"; }

# --------------------------------------------------------------------------
# Configuration

# runc: crun fails here ("cgroups in hybrid mode not supported").
# default_ulimits: Podman's default raises nofile/nproc, which this kernel
# refuses inside containers ("setrlimit ... Operation not permitted").
# netns = "none": no network for containers unless asked for (`podman build
# --network=host` still works).
conf_text() {
    cat <<'EOF'
# Written by hpc-wps scripts/podman.sh; overrides containers.conf.
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
netns = "none"

[engine]
runtime = "runc"
EOF
}

write_conf() {
    if [[ -f $CONF_DROPIN ]] && cmp -s "$CONF_DROPIN" <(conf_text); then
        log "$CONF_DROPIN up to date"
        return 0
    fi
    mkdir -p "$(dirname "$CONF_DROPIN")"
    conf_text >"$CONF_DROPIN.tmp"
    mv "$CONF_DROPIN.tmp" "$CONF_DROPIN"
    log "wrote $CONF_DROPIN"
    # A running service read the old settings.
    if service_pid >/dev/null; then
        log "configuration changed: restarting the API service"
        stop_service
    fi
}

# --------------------------------------------------------------------------
# API service

ping_ok() {
    [[ -S $SOCKET ]] || return 1
    [[ $(curl -s --max-time 5 --unix-socket "$SOCKET" http://d/_ping 2>/dev/null) == OK ]]
}

# Print the pid of our running service, if any (a stale pid file may name a
# pid reused by another program, so check the command line too). Where the pid
# file names no service, look the service up by its command line and record it.
service_pid() {
    local pid=
    [[ -r $PIDFILE ]] && pid=$(tr -dc '0-9' <"$PIDFILE")
    if [[ -n $pid && -r /proc/$pid/cmdline ]] \
        && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "system service.*unix://$SOCKET"; then
        echo "$pid"
        return 0
    fi
    pid=$(pgrep -o -f "^podman system service --time=0 unix://$SOCKET\$") || return 1
    echo "$pid" >"$PIDFILE"
    echo "$pid"
}

start_service() {
    local launched=
    if ping_ok; then
        log "API service already answers on $SOCKET"
        return 0
    fi
    if ! service_pid >/dev/null; then
        rm -f "$SOCKET" "$PIDFILE"
        mkdir -p "$RUN_DIR" "$(dirname "$LOGFILE")"
        log "starting podman system service on unix://$SOCKET (log $LOGFILE)"
        printf '=== %s start\n' "$(date -Is)" >>"$LOGFILE"
        # Own session and no inherited stdio: the service outlives this script
        # and does not hold a CI step's output pipe open.
        # fd 9 is our lock: the service must not keep it. It runs in $RUN_DIR: conmon leaves files
        # (an `oom` marker when a container runs out of memory) in the service's working directory.
        # The subshell's pid is the service's: it execs setsid, which execs podman (a background
        # child of a script without job control is no group leader, so setsid does not fork).
        (cd "$RUN_DIR" && exec setsid podman system service --time=0 "unix://$SOCKET") \
            </dev/null >>"$LOGFILE" 2>&1 9>&- &
        launched=$!
        echo "$launched" >"$PIDFILE"
    fi
    local deadline=$(($(date +%s) + PING_TIMEOUT))
    until ping_ok; do
        # The child we launched is alive by kill -0 first: until it has exec'd podman its
        # command line is still this script's, and service_pid alone would call a healthy
        # start dead (CI saw exactly that on a busy machine).
        if ! { [[ -n $launched ]] && kill -0 "$launched" 2>/dev/null; } && ! service_pid >/dev/null; then
            tail -n 20 "$LOGFILE" >&2 || true
            die "podman system service exited (see $LOGFILE)"
        fi
        (($(date +%s) < deadline)) || die "no answer on $SOCKET after ${PING_TIMEOUT} s (see $LOGFILE)"
        sleep 0.2
    done
    log "API service up (pid $(service_pid || echo '?'))"
}

stop_service() {
    local pid i
    if ! pid=$(service_pid); then
        rm -f "$PIDFILE"
        if ping_ok; then
            log "something not started by this script serves $SOCKET; left alone"
        else
            log "API service not running"
        fi
        return 0
    fi
    log "stopping the API service (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        [[ -e /proc/$pid ]] || break
        sleep 0.1
    done
    if [[ -e /proc/$pid ]]; then
        log "no exit on SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDFILE" "$SOCKET"
}

# --------------------------------------------------------------------------
# Images

image_exists() { podman image exists "$1" 2>/dev/null; }

build_busybox() {
    local src=$IMAGES_DIR/busybox ctx busybox applet missing=()
    busybox=$(dpkg -L busybox-static | grep -E '/s?bin/busybox$') \
        || die "busybox-static has no busybox binary?"
    busybox=${busybox%%$'\n'*}
    ctx=$(mktemp -d /var/tmp/hpc-wps-busybox.XXXXXX)
    TMP_CTX=$ctx
    cp "$src/Containerfile" "$ctx/"
    cp -a "$src/rootfs" "$ctx/rootfs"
    mkdir -p "$ctx/rootfs/bin" "$ctx/rootfs/sbin" "$ctx/rootfs/usr/bin" \
        "$ctx/rootfs/usr/sbin" "$ctx/rootfs/root"
    install -d -m 1777 "$ctx/rootfs/tmp"
    install -m 0755 "$busybox" "$ctx/rootfs/bin/busybox"
    # Every applet, where busybox would install it (bin/sh, usr/bin/wc, ...).
    while read -r applet; do
        [[ -n $applet && $applet != bin/busybox ]] || continue
        [[ -e $ctx/rootfs/$applet || -L $ctx/rootfs/$applet ]] && continue
        mkdir -p "$ctx/rootfs/$(dirname "$applet")"
        ln -s /bin/busybox "$ctx/rootfs/$applet"
    done < <("$busybox" --list-full)
    while read -r applet; do
        [[ -z $applet || $applet == \#* ]] && continue
        compgen -G "$ctx/rootfs/*bin/$applet" >/dev/null \
            || compgen -G "$ctx/rootfs/usr/*bin/$applet" >/dev/null \
            || missing+=("$applet")
    done <"$src/applets"
    ((${#missing[@]} == 0)) || die "busybox lacks applets: ${missing[*]}"
    podman build -q --pull=never -t "$BUSYBOX_IMAGE" "$ctx" >/dev/null
    # Smoke test: the shell runs and the required applets are found.
    local applets
    applets=$(grep -v -e '^#' -e '^$' "$src/applets" | tr '\n' ' ')
    podman run --rm "$BUSYBOX_IMAGE" sh -c \
        "for a in $applets; do command -v \$a >/dev/null || { echo missing \$a; exit 1; }; done" \
        9>&- || die "smoke test of $BUSYBOX_IMAGE failed"
    rm -rf "$ctx"
}

# The Debian mirror the machine's apt uses for $DEBIAN_SUITE (one-line .list
# files and deb822 .sources files), else deb.debian.org.
debian_mirror() {
    local f files=()
    [[ -f /etc/apt/sources.list ]] && files+=(/etc/apt/sources.list)
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] && files+=("$f")
    done
    local mirror=""
    if ((${#files[@]})); then
        mirror=$(awk -v suite="$DEBIAN_SUITE" '
            function flush() {
                if (types ~ /(^|[ \t])deb([ \t]|$)/ && enabled !~ /^(no|false)$/ &&
                    (" " suites " ") ~ (" " suite " ") && uris != "") {
                    split(uris, u, /[ \t]+/); print u[1]; found = 1; exit
                }
                types = uris = suites = enabled = ""
            }
            FNR == 1 { if (deb822) flush(); deb822 = (FILENAME ~ /\.sources$/) }
            deb822 && /^[ \t]*$/ { flush(); next }
            deb822 && /^[ \t]*#/ { next }
            deb822 {
                key = tolower($1); sub(/:$/, "", key)
                val = $0; sub(/^[^:]*:[ \t]*/, "", val)
                gsub(/[ \t]+/, " ", val)
                if (key == "types") types = val
                else if (key == "uris") uris = val
                else if (key == "suites") suites = val
                else if (key == "enabled") enabled = tolower(val)
                next
            }
            $1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while ($i !~ /\]$/ && i < NF) i++; i++ }
                if ($(i + 1) == suite) { print $i; found = 1; exit }
            }
            END { if (!found && deb822) flush() }
        ' "${files[@]}")
    fi
    echo "${mirror:-$DEFAULT_MIRROR}"
}

debootstrap_rootfs() {
    if [[ -f $DEBIAN_ROOTFS/$ROOTFS_DONE ]]; then
        log "reusing $DEBIAN_ROOTFS"
        return 0
    fi
    local mirror
    mirror=$(debian_mirror)
    log "debootstrap --variant=minbase $DEBIAN_SUITE $DEBIAN_ROOTFS $mirror"
    rm -rf "$DEBIAN_ROOTFS" "$DEBIAN_ROOTFS.tmp"
    mkdir -p "$(dirname "$DEBIAN_ROOTFS")"
    if ! debootstrap --variant=minbase "$DEBIAN_SUITE" "$DEBIAN_ROOTFS.tmp" "$mirror" \
        >"$DEBIAN_ROOTFS.log" 2>&1; then
        tail -n 30 "$DEBIAN_ROOTFS.log" >&2
        die "debootstrap failed (log $DEBIAN_ROOTFS.log)"
    fi
    touch "$DEBIAN_ROOTFS.tmp/$ROOTFS_DONE"
    mv "$DEBIAN_ROOTFS.tmp" "$DEBIAN_ROOTFS"
    log "rootfs $(du -sh "$DEBIAN_ROOTFS" | cut -f1)"
}

import_debian() {
    local src=$IMAGES_DIR/debian-bookworm-slim changes=() excludes=() line
    while IFS= read -r line; do
        [[ -z $line || $line == \#* ]] || changes+=(--change "$line")
    done <"$src/changes"
    while IFS= read -r line; do
        [[ -z $line || $line == \#* ]] || excludes+=(--exclude "$line")
    done <"$src/exclude"
    tar -C "$DEBIAN_ROOTFS" --numeric-owner --exclude "./$ROOTFS_DONE" "${excludes[@]}" -c . \
        | podman import -q "${changes[@]}" - "$DEBIAN_IMAGE" >/dev/null
    podman run --rm "$DEBIAN_IMAGE" sh -c 'test -x /usr/bin/apt-get && cat /etc/debian_version' \
        >/dev/null 9>&- || die "smoke test of $DEBIAN_IMAGE failed"
}

build_debian() {
    if [[ ! -f $DEBIAN_ROOTFS/$ROOTFS_DONE ]]; then
        timed "packages debootstrap" apt_install debootstrap debian-archive-keyring
    fi
    timed debootstrap debootstrap_rootfs
    timed "podman import" import_debian
}

ensure_image() {
    local image=$1
    shift
    if image_exists "$image"; then
        log "$image present"
        return 0
    fi
    local t0
    t0=$(now)
    "$@"
    log "built $image in $(elapsed "$t0") s"
}

# --------------------------------------------------------------------------
# Commands

cmd_start() {
    need_root
    take_lock
    timed packages install_base
    timed config write_conf
    timed service start_service
}

cmd_stop() {
    need_root
    take_lock
    timed stop stop_service
}

cmd_status() {
    local rc=0 pid
    if ping_ok; then
        pid=$(service_pid || echo "not started by this script")
        echo "podman API: up (unix://$SOCKET, pid $pid)"
    else
        echo "podman API: down"
        rc=1
    fi
    if command -v podman >/dev/null; then
        echo "images:"
        podman images --format '  {{.Repository}}:{{.Tag}}  {{.ID}}  {{.Size}}' 2>/dev/null || true
    else
        echo "podman: not installed"
    fi
    return $rc
}

cmd_env() {
    echo "export DOCKER_HOST=unix://$SOCKET"
}

cmd_images() {
    local busybox=1 debian=1 arg
    for arg in "$@"; do
        case $arg in
            --no-debian) debian=0 ;;
            busybox) busybox=1 debian=0 ;;
            debian) busybox=0 debian=1 ;;
            all) busybox=1 debian=1 ;;
            *) die "images: unknown argument '$arg' (busybox|debian|all|--no-debian)" ;;
        esac
    done
    need_root
    take_lock
    timed packages install_base
    timed config write_conf
    if ((busybox)); then
        timed "image busybox" ensure_image "$BUSYBOX_IMAGE" build_busybox
        # The example container processes' image, FROM busybox; rebuilt when its sources change.
        timed "image examples" "$(dirname "$IMAGES_DIR")/build-example-images.sh" 9>&-
    fi
    if ((debian)); then
        timed "image debian" ensure_image "$DEBIAN_IMAGE" \
            build_debian
    fi
}

main() {
    local cmd=${1:-}
    (($#)) && shift
    case $cmd in
        start) cmd_start ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        env) cmd_env ;;
        images) cmd_images "$@" ;;
        *)
            echo "usage: $0 start|stop|status|env|images [busybox|debian|--no-debian]" >&2
            exit 2
            ;;
    esac
}

main "$@"
