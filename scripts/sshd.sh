#!/usr/bin/env bash
# A login host for the tests of `[scheduler] remote`: a real OpenSSH sshd of its own on 127.0.0.1:2222
# (config, host key and pid file under /var/lib/hpc-wps-sshd, apart from any system sshd), a user
# `hpcwps-remote` that logs in with a key made here only, and a directory both sides see.
#
#   start     install openssh-server and acl if missing, make the user, keys and directories, start sshd
#   status    whether it answers
#   restart   kill sshd and every connection it serves (as a dropped network would), then start it
#   stop      the same kill, no start
#   env       the paths and URL the tests read, as shell assignments
#
# Slurm runs the user's jobs on this machine: they run this service's Python, so the user may pass
# through /root to the interpreter (an ACL with x only, nothing listed) and write job directories
# under shared/ (a default ACL, inherited by every directory the service makes there).
set -euo pipefail

readonly STATE=/var/lib/hpc-wps-sshd
readonly PORT="${HPC_WPS_SSHD_PORT:-2222}"
readonly USER_NAME=hpcwps-remote
readonly CONFIG=$STATE/sshd_config
readonly PIDFILE=$STATE/sshd.pid

install_packages() {
  local missing=()
  [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
  command -v setfacl >/dev/null || missing+=(acl)
  [ ${#missing[@]} -eq 0 ] && return
  echo "sshd: installing ${missing[*]}" >&2
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

set_up() {
  mkdir -p "$STATE/authorized_keys" "$STATE/shared" /run/sshd
  chmod 755 "$STATE" "$STATE/authorized_keys"
  id "$USER_NAME" >/dev/null 2>&1 || useradd --system --create-home --home-dir "$STATE/home" --shell /bin/sh "$USER_NAME"
  usermod -p '*' "$USER_NAME"  # no password, but not locked ("!"): sshd without PAM refuses a locked account
  [ -f "$STATE/host_key" ] || ssh-keygen -q -t ed25519 -N '' -C hpc-wps-test-host -f "$STATE/host_key"
  [ -f "$STATE/client_key" ] || ssh-keygen -q -t ed25519 -N '' -C hpc-wps-test-client -f "$STATE/client_key"
  install -m 644 "$STATE/client_key.pub" "$STATE/authorized_keys/$USER_NAME"
  echo "[127.0.0.1]:$PORT $(cut -d' ' -f1,2 "$STATE/host_key.pub")" >"$STATE/known_hosts"
  # A key of another host, for the test of a refused host key.
  [ -f "$STATE/other_host_key" ] || ssh-keygen -q -t ed25519 -N '' -C other-host -f "$STATE/other_host_key"
  echo "[127.0.0.1]:$PORT $(cut -d' ' -f1,2 "$STATE/other_host_key.pub")" >"$STATE/wrong_known_hosts"
  setfacl -m "u:$USER_NAME:x" /root
  setfacl -m "u:$USER_NAME:rwx" -d -m "u:$USER_NAME:rwx" -d -m "u::rwx" "$STATE/shared"
  # Slurm's accounting knows the user (in the root account, as the cluster's own root), so it may submit.
  if command -v sacctmgr >/dev/null && ! sacctmgr -n -P list user "$USER_NAME" format=user | grep -qxF "$USER_NAME"; then
    sacctmgr -i add user "$USER_NAME" account=root >/dev/null
  fi
  cat >"$CONFIG" <<EOF
Port $PORT
ListenAddress 127.0.0.1
HostKey $STATE/host_key
PidFile $PIDFILE
AuthorizedKeysFile $STATE/authorized_keys/%u
AllowUsers $USER_NAME
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin no
MaxSessions 100
MaxStartups 100:30:200
Subsystem sftp internal-sftp
EOF
}

listener() {
  [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null && cat "$PIDFILE"
}

answers() {
  ssh -o BatchMode=yes -o ConnectTimeout=5 -o UserKnownHostsFile="$STATE/known_hosts" -o StrictHostKeyChecking=yes \
    -o IdentitiesOnly=yes -i "$STATE/client_key" -p "$PORT" -l "$USER_NAME" 127.0.0.1 true 2>/dev/null
}

start() {
  install_packages
  set_up
  if ! listener >/dev/null; then
    /usr/sbin/sshd -f "$CONFIG"
  fi
  for _ in $(seq 1 30); do
    answers && { echo "sshd: up on 127.0.0.1:$PORT"; return; }
    sleep 0.5
  done
  echo "sshd: does not answer on 127.0.0.1:$PORT" >&2
  return 1
}

descendants() {
  local pid
  for pid in $(ps -e -o pid=,ppid= | awk -v parent="$1" '$2 == parent { print $1 }'); do
    echo "$pid"
    descendants "$pid"
  done
}

stop() {
  local pid
  pid=$(listener) || { echo "sshd: not running"; return; }
  # The listener and every connection it serves, as a network drop or a crash would end them.
  kill -KILL "$pid" $(descendants "$pid") 2>/dev/null || true
  rm -f "$PIDFILE"
  echo "sshd: stopped"
}

case "${1:-start}" in
  start) start ;;
  status) if answers; then echo "sshd: up on 127.0.0.1:$PORT"; else echo "sshd: down"; exit 1; fi ;;
  restart) stop; start ;;
  stop) stop ;;
  env)
    echo "HPC_WPS_TEST_SSH_REMOTE=ssh://$USER_NAME@127.0.0.1:$PORT"
    echo "HPC_WPS_TEST_SSH_KEY=$STATE/client_key"
    echo "HPC_WPS_TEST_SSH_KNOWN_HOSTS=$STATE/known_hosts"
    echo "HPC_WPS_TEST_SSH_WRONG_KNOWN_HOSTS=$STATE/wrong_known_hosts"
    echo "HPC_WPS_TEST_SSH_SHARED=$STATE/shared"
    echo "HPC_WPS_TEST_SSH_HOME=$STATE/home"
    ;;
  *) echo "usage: $0 start|status|restart|stop|env" >&2; exit 2 ;;
esac
