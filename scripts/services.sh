#!/usr/bin/env bash
# Start (or check) every real service the test suite talks to: PostgreSQL (the job table), Slurm and
# Grid Engine with DRMAA (scripts/clusters.sh), an sshd playing a login host (scripts/sshd.sh), Podman's
# Docker API and the local images (scripts/podman.sh), and Debian's Chromium, which the job monitor's
# browser tests drive headless (no browser download).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

postgres_up() {
  pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null
}

start_postgres() {
  if postgres_up; then
    echo "postgresql: up"
    return
  fi
  if ! command -v pg_ctlcluster >/dev/null; then
    echo "postgresql: installing" >&2
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends postgresql >/dev/null
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 1 30); do
    postgres_up && { echo "postgresql: started"; return; }
    sleep 1
  done
  echo "postgresql: did not start" >&2
  return 1
}

install_chromium() {
  if command -v chromium >/dev/null; then
    echo "chromium: installed"
    return
  fi
  echo "chromium: installing" >&2
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium >/dev/null
  echo "chromium: installed"
}

start_all() {
  local t0=$SECONDS
  start_postgres
  install_chromium
  "$here/clusters.sh" start
  "$here/sshd.sh" start  # after Slurm: its login user gets an association
  "$here/podman.sh" start
  "$here/podman.sh" images
  if [ -x "$here/build-example-images.sh" ]; then
    "$here/build-example-images.sh"
  fi
  echo "services: all up in $((SECONDS - t0)) s"
}

status_all() {
  local rc=0
  if postgres_up; then echo "postgresql: up"; else echo "postgresql: down"; rc=1; fi
  if command -v chromium >/dev/null; then echo "chromium: installed"; else echo "chromium: missing"; rc=1; fi
  "$here/clusters.sh" status || rc=1
  "$here/sshd.sh" status || rc=1
  "$here/podman.sh" status >/dev/null && echo "podman: up" || { echo "podman: down"; rc=1; }
  return $rc
}

case "${1:-start}" in
  start) start_all ;;
  status) status_all ;;
  postgres) start_postgres ;;
  chromium) install_chromium ;;
  *) echo "usage: $0 start|status|postgres|chromium" >&2; exit 2 ;;
esac
