#!/usr/bin/env bash
# Start (or check) the real services the test suite talks to: PostgreSQL for the job table.
# Later parts call scripts/clusters.sh (Slurm, Grid Engine) and scripts/podman.sh (container engine).
set -euo pipefail

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

case "${1:-start}" in
  start) start_postgres ;;
  status) postgres_up && echo "postgresql: up" || { echo "postgresql: down"; exit 1; } ;;
  *) echo "usage: $0 start|status" >&2; exit 2 ;;
esac
