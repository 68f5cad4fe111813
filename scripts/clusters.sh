#!/usr/bin/env bash
# Single-node Slurm (with slurmdbd accounting on MariaDB) and Grid Engine
# (with DRMAA) for tests and development.
#
# Usage: scripts/clusters.sh start|stop|status|env
#   start   install the packages if missing, configure, start the daemons, and
#           verify that each system really runs a job (idempotent: quick when
#           everything already runs).
#   stop    stop slurmd, slurmctld, slurmdbd, sge_execd, sge_qmaster and
#           munged (not MariaDB: the machine's own server, left running).
#   status  one line per system; exit 0 only if all are up.
#   env     `export` lines for a test run: eval "$(scripts/clusters.sh env)"
#
# Meant for a throw-away Debian 12 machine where we are root and nothing is
# started for us (no systemd, no init scripts, no sudo): CI's .ci/run and
# developers' machines. `stop` stops munged too (only Slurm uses it here).
# Slurm's accounting (sacct) is stored by slurmdbd in the database
# slurm_acct_db of the local MariaDB server, as on production clusters; the
# server is installed and started only when it is not already running.
# Logs: /var/log/slurm, /var/log/munge, /var/log/gridengine.
set -euo pipefail

readonly SGE_ROOT_DIR=/var/lib/gridengine
readonly SGE_CELL_NAME=default
readonly DRMAA_LIB=/usr/lib/gridengine-drmaa/lib/libdrmaa.so.1.0
# libdrmaa links libjemalloc, which cannot be dlopen()ed late ("cannot allocate
# memory in static TLS block"): Python clients must preload it.
readonly JEMALLOC=/lib/x86_64-linux-gnu/libjemalloc.so.2

readonly SLURM_CONF=/etc/slurm/slurm.conf
readonly SLURMDBD_CONF=/etc/slurm/slurmdbd.conf
readonly SLURMDBD_PID=/run/slurmdbd.pid
readonly SLURM_CLUSTER=hpcwps
readonly SLURM_MIN_JOB_AGE=10
# slurmdbd's database, reached through MariaDB's socket as the MariaDB user
# `slurm` authenticated by its Unix user (unix_socket): no password to keep.
readonly SLURM_DB=slurm_acct_db
readonly SLURM_LOG_DIR=/var/log/slurm
readonly SLURMCTLD_PID=/run/slurmctld.pid
readonly SLURMD_PID=/run/slurmd.pid
readonly SLURM_STATE_DIR=/var/spool/slurmctld
readonly SLURMD_SPOOL_DIR=/var/spool/slurmd
readonly MUNGE_PID=/run/munge/munged.pid
readonly SGE_LOG_DIR=/var/log/gridengine
# execd_spool_dir of Debian's global configuration (which we do not change).
readonly SGE_EXECD_SPOOL=/var/spool/gridengine/execd
readonly SGE_REPORTING="accounting=true reporting=false flush_time=00:00:15 joblog=false sharelog=00:00:00 accounting_flush_time=00:00:00"
# Node name both systems use: the notes' setups work with `localhost`, whatever
# the machine's host name is.
readonly NODE=localhost

readonly APT_PACKAGES=(slurm-wlm slurmdbd munge gridengine-master gridengine-exec
    gridengine-client gridengine-drmaa1.0 libjemalloc2)
# Only installed when no MariaDB (or MySQL) server answers already.
readonly MARIADB_PACKAGES=(mariadb-server)

export SGE_ROOT=$SGE_ROOT_DIR SGE_CELL=$SGE_CELL_NAME

# --------------------------------------------------------------------------
# Helpers

log() { printf '[clusters] %s\n' "$*" >&2; }
die() { printf '[clusters] ERROR: %s\n' "$*" >&2; exit 1; }

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

# proc_is PID NAME: process PID is alive (not a zombie waiting to be reaped)
# and called NAME.
proc_is() {
    local stat
    [[ -n $1 && $(cat "/proc/$1/comm" 2>/dev/null) == "$2" ]] || return 1
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ $stat != Z* && $stat != X* ]]
}

# pidfile_pid PIDFILE: the pid a daemon wrote ('' when there is no file).
pidfile_pid() {
    tr -dc '0-9' 2>/dev/null <"$1" || true
}

# pid_alive PIDFILE NAME: the pid file names a live process called NAME (a
# stale file may name a pid reused by another program, so check the name too).
pid_alive() {
    proc_is "$(pidfile_pid "$1")" "$2"
}

# stop_pid PID NAME: SIGTERM the daemon, wait up to 15 s for the process to
# go, then SIGKILL.
stop_pid() {
    local pid=$1 name=$2 i
    proc_is "$pid" "$name" || return 0
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        proc_is "$pid" "$name" || return 0
        sleep 0.1
    done
    log "$name did not stop on SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

# stop_pidfile PIDFILE NAME: stop_pid with the pid the daemon wrote (wait for
# the process, not the file: some daemons remove it before exiting).
stop_pidfile() {
    stop_pid "$(pidfile_pid "$1")" "$2"
    rm -f "$1"
}

# wait_until SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.5 s.
wait_until() {
    local limit=$1 what=$2 deadline
    shift 2
    deadline=$(($(date +%s) + limit))
    until "$@"; do
        (($(date +%s) < deadline)) || die "timed out after ${limit} s waiting for $what"
        sleep 0.5
    done
}

# --------------------------------------------------------------------------
# Installation

# packages_installed PACKAGE...: all of them are installed.
packages_installed() {
    local p status
    for p in "$@"; do
        status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        [[ $status == "install ok installed" ]] || return 1
    done
}

install_packages() {
    local wanted=("${APT_PACKAGES[@]}")
    # A database server that answers already (the machine's own) is used as
    # it is, whichever package it came from.
    mariadb_up || wanted+=("${MARIADB_PACKAGES[@]}")
    if packages_installed "${wanted[@]}"; then
        log "packages already installed"
        return 0
    fi
    # Without the preseeding the Grid Engine packages leave the cell
    # unconfigured (no /var/lib/gridengine/default).
    local pkg
    for pkg in gridengine-common gridengine-client; do
        debconf-set-selections <<EOF
$pkg shared/gridenginemaster string $NODE
$pkg shared/gridenginecell string $SGE_CELL_NAME
$pkg shared/gridengineconfig boolean true
EOF
    done
    # Other scripts may run apt at the same moment: wait for the lock.
    local apt=(apt-get -o DPkg::Lock::Timeout=600 -q -y)
    log "installing ${wanted[*]}"
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" update >/dev/null
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install --no-install-recommends \
        "${wanted[@]}" >/dev/null
    packages_installed "${wanted[@]}" || die "packages still missing after apt-get install"
    [[ -d $SGE_ROOT/$SGE_CELL/common ]] \
        || die "Grid Engine cell $SGE_ROOT/$SGE_CELL was not created (debconf preseeding ignored?)"
}

# --------------------------------------------------------------------------
# munge (Slurm's authentication)

munge_start() {
    mkdir -p /run/munge /var/log/munge
    chown munge:munge /run/munge /var/log/munge
    if ! pid_alive "$MUNGE_PID" munged; then
        log "starting munged"
        runuser -u munge -- /usr/sbin/munged 9>&-
    fi
    wait_until 10 "munge to answer" sh -c 'munge -n | unmunge >/dev/null 2>&1'
}

# --------------------------------------------------------------------------
# MariaDB and slurmdbd (Slurm's accounting: what sacct reads)

# The local server answers root on its socket (Debian authenticates root by
# its Unix user).
mariadb_up() {
    command -v mysqladmin >/dev/null || return 1
    timeout 10 mysqladmin --protocol=socket -u root ping >/dev/null 2>&1
}

# Start the machine's MariaDB if it is not running (never stopped here: other
# programs may use it), and let the Unix user slurm, which slurmdbd runs as,
# own the accounting database.
mariadb_start() {
    if ! mariadb_up; then
        [[ -x /etc/init.d/mariadb ]] || die "no MariaDB server answers and /etc/init.d/mariadb is missing"
        log "starting MariaDB"
        /etc/init.d/mariadb start >/dev/null 9>&-
        wait_until 60 "MariaDB to answer" mariadb_up
    fi
    mysql --protocol=socket -u root <<EOF
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED VIA unix_socket;
GRANT ALL PRIVILEGES ON $SLURM_DB.* TO 'slurm'@'localhost';
EOF
}

slurmdbd_conf_text() {
    cat <<EOF
# Written by scripts/clusters.sh (hpc-wps): accounting of the test cluster.
AuthType=auth/munge
DbdHost=$NODE
SlurmUser=slurm
PidFile=$SLURMDBD_PID
LogFile=$SLURM_LOG_DIR/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StorageLoc=$SLURM_DB
EOF
}

slurmdbd_answers() {
    timeout 10 sacctmgr -n -P list cluster format=cluster >/dev/null 2>&1
}

# slurmdbd up, and the cluster known to it (needs the new slurm.conf:
# sacctmgr finds slurmdbd through it).
slurmdbd_start() {
    mariadb_start
    local new
    new=$(mktemp)
    slurmdbd_conf_text >"$new"
    if ! cmp -s "$new" "$SLURMDBD_CONF"; then
        log "writing $SLURMDBD_CONF"
        # It may hold a database password on other sites: slurm's eyes only.
        install -m 0600 -o slurm -g slurm "$new" "$SLURMDBD_CONF"
        stop_pidfile "$SLURMDBD_PID" slurmdbd
    fi
    rm -f "$new"
    if ! pid_alive "$SLURMDBD_PID" slurmdbd; then
        log "starting slurmdbd"
        /usr/sbin/slurmdbd 9>&-
    fi
    wait_until 60 "slurmdbd to answer (see $SLURM_LOG_DIR/slurmdbd.log)" slurmdbd_answers
    if ! sacctmgr -n -P list cluster format=cluster | grep -qxF "$SLURM_CLUSTER"; then
        log "registering cluster $SLURM_CLUSTER with slurmdbd"
        sacctmgr -i add cluster "$SLURM_CLUSTER" >/dev/null
    fi
}

# --------------------------------------------------------------------------
# Slurm

# slurm.conf for this node's real CPU layout. RealMemory stays 5 % under the
# total: a node claiming more memory than it has would be drained.
slurm_conf_text() {
    local hw cpus sockets cores threads mem
    hw=$(slurmd -C | head -n 1)
    field() { sed -n "s/.*\\b$1=\\([0-9]*\\).*/\\1/p" <<<"$hw"; }
    cpus=$(field CPUs)
    sockets=$(field SocketsPerBoard)
    cores=$(field CoresPerSocket)
    threads=$(field ThreadsPerCore)
    mem=$(field RealMemory)
    [[ -n $cpus && -n $sockets && -n $cores && -n $threads && -n $mem ]] \
        || die "cannot parse 'slurmd -C': $hw"
    mem=$((mem * 95 / 100))
    cat <<EOF
# Written by scripts/clusters.sh (hpc-wps): single-node test cluster.
ClusterName=$SLURM_CLUSTER
SlurmctldHost=$NODE
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=$SLURM_STATE_DIR
SlurmdSpoolDir=$SLURMD_SPOOL_DIR
SlurmctldPidFile=$SLURMCTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$SLURM_LOG_DIR/slurmctld.log
SlurmdLogFile=$SLURM_LOG_DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# A node that was down (daemon killed, machine rebooted) comes back by itself.
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
# Accounting through slurmdbd: sacct knows every job after it has left
# squeue, as on production clusters.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$NODE
# Jobs run only under an account their user has an association with, as
# on clusters that charge compute to projects (root's own account is made
# with the cluster; tests add the accounts they charge with sacctmgr).
AccountingStorageEnforce=associations
MpiDefault=none
# Finished jobs stay visible to squeue/scontrol for MinJobAge seconds (then
# sacct only). Shorter than Slurm's 300 s default so that the tests see jobs
# leave squeue without waiting minutes.
MinJobAge=$SLURM_MIN_JOB_AGE
NodeName=$NODE CPUs=$cpus SocketsPerBoard=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

slurm_running() {
    pid_alive "$SLURMCTLD_PID" slurmctld && pid_alive "$SLURMD_PID" slurmd
}

# Long node state as sinfo prints it: idle, mixed, down*, drained, ...
slurm_node_state() {
    { timeout 10 sinfo -h -n "$NODE" -o %T 2>/dev/null || true; } | head -n 1
}

slurm_stop() {
    stop_pidfile "$SLURMD_PID" slurmd
    stop_pidfile "$SLURMCTLD_PID" slurmctld
}

# Returns 0 once the node takes jobs. A node left down or drained by an
# earlier crash is resumed (a `*` suffix means slurmd has not reported yet:
# wait for it instead).
slurm_node_ready() {
    local state
    state=$(slurm_node_state)
    case $state in
        idle | mixed | allocated | completing) return 0 ;;
        *'*' | '') return 1 ;;
        down* | drain* | fail*)
            log "node $NODE is '$state': resuming it"
            scontrol update nodename="$NODE" state=resume || true
            return 1
            ;;
        *) return 1 ;;
    esac
}

slurm_start() {
    munge_start

    mkdir -p "$SLURM_LOG_DIR" "$SLURM_STATE_DIR" "$SLURMD_SPOOL_DIR" /etc/slurm
    chown slurm:slurm "$SLURM_LOG_DIR" "$SLURM_STATE_DIR"

    local new changed=false
    new=$(mktemp)
    slurm_conf_text >"$new"
    if ! cmp -s "$new" "$SLURM_CONF"; then
        log "writing $SLURM_CONF"
        install -m 0644 "$new" "$SLURM_CONF"
        changed=true
    fi
    rm -f "$new"
    slurmdbd_start
    # Daemons read the node definitions and the accounting storage at start
    # only. Jobs survive: slurmctld keeps its state in StateSaveLocation.
    if $changed; then slurm_stop; fi

    if ! pid_alive "$SLURMCTLD_PID" slurmctld; then
        log "starting slurmctld"
        /usr/sbin/slurmctld 9>&-
    fi
    if ! pid_alive "$SLURMD_PID" slurmd; then
        log "starting slurmd"
        # -N: the node is called localhost whatever the machine's host name.
        /usr/sbin/slurmd -N "$NODE" 9>&-
    fi
    wait_until 60 "Slurm node $NODE to become idle (see $SLURM_LOG_DIR)" slurm_node_ready
    slurm_verify
}

# A trivial batch job must reach COMPLETED.
slurm_verify() {
    local id state deadline=$(($(date +%s) + 60))
    id=$(sbatch --parsable -D / -o /dev/null -e /dev/null -J clusters-check --wrap /bin/true)
    id=${id%%;*}
    while :; do
        state=$(scontrol show job "$id" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
        case $state in
            COMPLETED) break ;;
            PENDING | CONFIGURING | RUNNING | COMPLETING | '') ;;
            *) die "Slurm check job $id ended in state $state" ;;
        esac
        (($(date +%s) < deadline)) || die "Slurm check job $id not COMPLETED after 60 s (state '$state')"
        sleep 0.2
    done
    wait_until 30 "sacct to know Slurm check job $id (see $SLURM_LOG_DIR/slurmdbd.log)" \
        sh -c "sacct -n -X -P -j $id -o State 2>/dev/null | grep -qx COMPLETED"
    log "Slurm OK: job $id COMPLETED, in squeue and in sacct"
}

# --------------------------------------------------------------------------
# Grid Engine

sge_qmaster_pidfile() {
    echo "$(sge_bootstrap qmaster_spool_dir)/qmaster.pid"
}
sge_execd_pidfile() {
    echo "$SGE_EXECD_SPOOL/$NODE/execd.pid"
}
sge_bootstrap() {
    awk -v k="$1" '$1 == k { print $2 }' "$SGE_ROOT/$SGE_CELL/common/bootstrap"
}

sge_running() {
    pid_alive "$(sge_qmaster_pidfile)" sge_qmaster && pid_alive "$(sge_execd_pidfile)" sge_execd
}

# qmaster refuses clients whose address resolves to `localhost` while their
# host name is another one, unless both are aliases.
sge_host_aliases() {
    local file=$SGE_ROOT/$SGE_CELL/common/host_aliases line
    line="$NODE $(hostname)"
    [[ $(hostname) == "$NODE" ]] && return 0
    grep -qxF "$line" "$file" 2>/dev/null && return 0
    echo "$line" >>"$file"
    chmod 0644 "$file"
}

# Grid Engine logs to `messages` files in its spool directories; link them
# where one looks for logs. Daemons' own stdout/stderr go to *.out there.
sge_log_links() {
    mkdir -p "$SGE_LOG_DIR"
    ln -sfn "$(sge_bootstrap qmaster_spool_dir)/messages" "$SGE_LOG_DIR/qmaster.messages"
    ln -sfn "$SGE_EXECD_SPOOL/$NODE/messages" "$SGE_LOG_DIR/execd.messages"
}

sge_qmaster_start() {
    local pidfile
    pidfile=$(sge_qmaster_pidfile)
    pid_alive "$pidfile" sge_qmaster && return 0
    # A qmaster killed with SIGKILL leaves its pid file behind.
    rm -f "$pidfile"
    log "starting sge_qmaster"
    /usr/sbin/sge_qmaster >>"$SGE_LOG_DIR/sge_qmaster.out" 2>&1 9>&-
    wait_until 30 "sge_qmaster to answer" sh -c 'timeout 5 qstat >/dev/null 2>&1'
}

sge_execd_start() {
    local pidfile
    pidfile=$(sge_execd_pidfile)
    pid_alive "$pidfile" sge_execd && return 0
    rm -f "$pidfile"
    log "starting sge_execd"
    /usr/sbin/sge_execd >>"$SGE_LOG_DIR/sge_execd.out" 2>&1 9>&-
}

# qconf listings wrap long values with a trailing backslash and pad with
# spaces: join and squeeze them so that listings compare by content.
normalize() {
    sed -e ':a' -e '/\\$/{N;s/\\\n//;ba' -e '}' | tr -s ' \t' ' '
}

# apply_if_changed WANT_FILE CURRENT_TEXT QCONF_ARGS...: run `qconf ARGS FILE`
# only when the configuration differs, so that reruns change nothing.
apply_if_changed() {
    local want=$1 current=$2
    shift 2
    if [[ $(normalize <"$want") != "$(normalize <<<"$current")" ]]; then
        qconf "$@" "$want" >/dev/null
    fi
}

# set_attrs KEY VALUE ...: rewrite those "key value" entries of a qconf
# listing read on stdin (dropping the continuation lines of wrapped ones).
set_attrs() {
    awk '
        BEGIN { for (i = 1; i < ARGC; i += 2) want[ARGV[i]] = ARGV[i + 1]; ARGC = 1 }
        skip { skip = /\\$/; next }
        ($1 in want) { printf "%-19s %s\n", $1, want[$1]; skip = /\\$/; next }
        { print }
    ' "$@"
}

sge_configure() {
    local dir slots current
    dir=$(mktemp -d)
    slots=$(nproc)

    # Root submits the tests' jobs: allow uid/gid 0. The file's name is the
    # name of the configuration it replaces.
    current=$(qconf -sconf global)
    # Accounting (qacct) written at once instead of every 15 s: tests read it
    # right after a job ends.
    set_attrs min_uid 0 min_gid 0 reporting_params "$SGE_REPORTING" \
        <<<"$current" >"$dir/global"
    apply_if_changed "$dir/global" "$current" -Mconf

    # Schedule every second instead of every 15 s: tests wait for jobs.
    current=$(qconf -ssconf)
    set_attrs schedule_interval 0:0:1 flush_submit_sec 1 flush_finish_sec 1 \
        <<<"$current" >"$dir/sconf"
    apply_if_changed "$dir/sconf" "$current" -Msconf

    if ! qconf -se "$NODE" >/dev/null 2>&1; then
        cat >"$dir/exechost" <<EOF
hostname $NODE
load_scaling NONE
complex_values NONE
user_lists NONE
xuser_lists NONE
projects NONE
xprojects NONE
usage_scaling NONE
report_variables NONE
EOF
        qconf -Ae "$dir/exechost" >/dev/null
    fi
    qconf -ss 2>/dev/null | grep -qxF "$NODE" || qconf -as "$NODE" >/dev/null

    # Parallel environment so that jobs can ask for cores: -pe smp N.
    cat >"$dir/smp" <<'EOF'
pe_name            smp
slots              999
user_lists         NONE
xuser_lists        NONE
start_proc_args    NONE
stop_proc_args     NONE
allocation_rule    $pe_slots
control_slaves     FALSE
job_is_first_task  TRUE
urgency_slots      min
accounting_summary FALSE
qsort_args         NONE
EOF
    if current=$(qconf -sp smp 2>/dev/null); then
        apply_if_changed "$dir/smp" "$current" -Mp
    else
        qconf -Ap "$dir/smp" >/dev/null
    fi

    # Queue all.q: from the existing one if any, else from qconf's template
    # (whose pe_list names PEs that do not exist here).
    local verb=-Mq
    current=$(qconf -sq all.q 2>/dev/null) || { current=$(qconf -sq); verb=-Aq; }
    # No load thresholds: a busy CI machine would otherwise put the queue in
    # alarm state (np_load_avg above 1.75) and stop scheduling.
    set_attrs qname all.q hostlist "$NODE" slots "$slots" pe_list smp \
        load_thresholds NONE <<<"$current" >"$dir/all.q"
    if [[ $verb == -Aq ]]; then
        qconf -Aq "$dir/all.q" >/dev/null
    else
        apply_if_changed "$dir/all.q" "$current" -Mq
    fi
    rm -rf "$dir"
}

# State letters of all.q@localhost in `qstat -f` ('' when healthy; u =
# execd not reporting, a = alarm, E = error, d = disabled, ...).
sge_queue_state() {
    { timeout 10 qstat -f -q "all.q@$NODE" 2>/dev/null || true; } \
        | awk -v q="all.q@$NODE" '$1 == q { print ($6 == "" ? "ok" : $6) }'
}

sge_queue_ready() {
    local state
    state=$(sge_queue_state)
    case $state in
        ok) return 0 ;;
        '' | *u*) return 1 ;;
        *E*)
            log "queue all.q@$NODE in error state '$state': clearing it"
            qmod -c "all.q@$NODE" >/dev/null || true
            return 1
            ;;
        *d*)
            log "queue all.q@$NODE disabled: enabling it"
            qmod -e "all.q@$NODE" >/dev/null || true
            return 1
            ;;
        *) return 1 ;;
    esac
}

sge_start() {
    [[ -d $SGE_ROOT/$SGE_CELL/common ]] || die "no Grid Engine cell at $SGE_ROOT/$SGE_CELL"
    sge_log_links
    sge_host_aliases
    sge_qmaster_start
    sge_configure
    sge_execd_start
    wait_until 60 "Grid Engine queue all.q@$NODE (see $(sge_bootstrap qmaster_spool_dir)/messages)" \
        sge_queue_ready
    sge_verify
}

# A trivial job must run; -sync y returns the job's exit status.
sge_verify() {
    local out
    if ! out=$(cd / && timeout 60 qsub -sync y -b y -o /dev/null -j y -N clusters-check /bin/true 2>&1); then
        die "Grid Engine check job failed: $out"
    fi
    log "Grid Engine OK: $(tr '\n' ' ' <<<"$out")"
}

sge_stop() {
    local qfile efile qpid epid
    [[ -f $SGE_ROOT/$SGE_CELL/common/bootstrap ]] || return 0
    qfile=$(sge_qmaster_pidfile)
    efile=$(sge_execd_pidfile)
    qpid=$(pidfile_pid "$qfile")
    epid=$(pidfile_pid "$efile")
    # Ask politely first (execd through qmaster); qmaster takes about 11 s to
    # shut down. Whatever is still there after 20 s gets signals.
    if proc_is "$qpid" sge_qmaster; then
        log "shutting down Grid Engine (qconf -ke all; qconf -km)"
        if proc_is "$epid" sge_execd; then timeout 10 qconf -ke all >/dev/null 2>&1 || true; fi
        timeout 10 qconf -km >/dev/null 2>&1 || true
        local i
        for ((i = 0; i < 100; i++)); do
            proc_is "$qpid" sge_qmaster || proc_is "$epid" sge_execd || break
            sleep 0.2
        done
    fi
    stop_pid "$epid" sge_execd
    stop_pid "$qpid" sge_qmaster
    rm -f "$qfile" "$efile"
}

# --------------------------------------------------------------------------
# Subcommands

cmd_start() {
    local t0
    t0=$(now)
    timed install install_packages
    timed "slurm start" slurm_start
    timed "sge start" sge_start
    log "both systems up (total $(elapsed "$t0") s)"
}

cmd_stop() {
    slurm_stop
    stop_pidfile "$SLURMDBD_PID" slurmdbd
    sge_stop
    # munged was started by us and nothing else here uses it.
    stop_pidfile "$MUNGE_PID" munged
    log "stopped"
}

# Cheap: no test job, just the daemons and the node/queue state.
cmd_status() {
    local rc=0 state
    if command -v sinfo >/dev/null && slurm_running; then
        state=$(slurm_node_state)
        if [[ $state =~ ^(idle|mixed|allocated|completing)$ ]]; then
            echo "slurm: up (node $NODE $state)"
        else
            echo "slurm: down (daemons running, node $NODE ${state:-not answering})"
            rc=1
        fi
    else
        echo "slurm: down (slurmctld/slurmd not running)"
        rc=1
    fi
    if pid_alive "$SLURMDBD_PID" slurmdbd && slurmdbd_answers; then
        echo "slurm accounting: up (slurmdbd, database $SLURM_DB in MariaDB)"
    else
        echo "slurm accounting: down (slurmdbd not running or not answering)"
        rc=1
    fi
    if [[ -f $SGE_ROOT/$SGE_CELL/common/bootstrap ]] && sge_running; then
        state=$(sge_queue_state)
        if [[ $state == ok ]]; then
            echo "sge: up (queue all.q@$NODE ok)"
        else
            echo "sge: down (daemons running, queue all.q@$NODE state '${state:-not answering}')"
            rc=1
        fi
    else
        echo "sge: down (sge_qmaster/sge_execd not running)"
        rc=1
    fi
    return $rc
}

cmd_env() {
    cat <<EOF
export SGE_ROOT=$SGE_ROOT_DIR
export SGE_CELL=$SGE_CELL_NAME
export DRMAA_LIBRARY_PATH=$DRMAA_LIB
export HPC_WPS_DRMAA_PRELOAD=$JEMALLOC
EOF
}

# start/stop from two shells at once (CI and a developer) would race. Daemons
# are started with fd 9 closed (`9>&-`): munged would otherwise keep the lock.
lock() {
    exec 9>/run/lock/hpc-wps-clusters.lock
    flock -w 900 9 || die "another clusters.sh start/stop still runs after 900 s"
}

main() {
    case ${1:-} in
        start | stop) [[ $(id -u) == 0 ]] || die "must run as root"; lock ;;
    esac
    case ${1:-} in
        start) cmd_start ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        env) cmd_env ;;
        *)
            echo "usage: $0 start|stop|status|env" >&2
            exit 2
            ;;
    esac
}

main "$@"
