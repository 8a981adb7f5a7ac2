#!/usr/bin/env bash
# Start a single-node SLURM cluster on this host (for CI and local testing).
#
# Installs Debian's slurm-wlm and munge if missing, writes a minimal
# slurm.conf for one node (this host, all its CPUs), creates a munge key,
# starts munged, slurmctld and slurmd as daemons, and waits until `sinfo`
# shows the node idle. Needs root. Idempotent: when the daemons are already
# up and the node is idle it only checks and returns.
#
# Environment:
#   SLURM_SETUP_TIMEOUT   seconds to wait for the node to become idle (default 120)
#   SLURM_CONF_DIR        where slurm.conf is written (default /etc/slurm)
#   SLURM_SKIP_INSTALL=1  do not run apt-get (fail if the binaries are missing)
#
# Usage: bash deploy/slurm/setup_slurm.sh     (stop with deploy/slurm/stop_slurm.sh)
set -euo pipefail

TIMEOUT="${SLURM_SETUP_TIMEOUT:-120}"
CONF_DIR="${SLURM_CONF_DIR:-/etc/slurm}"
HOST="$(hostname -s)"
LOG_DIR=/var/log/slurm
SPOOL=/var/spool/slurmctld
SPOOLD=/var/spool/slurmd
RUN_DIR=/run/slurm

log() { echo "[setup_slurm] $*" >&2; }
die() { echo "[setup_slurm] ERROR: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (installs packages and starts daemons)"

node_idle() {
    # true when sinfo answers and this host's node is idle (or mixed/allocated: usable)
    local state
    state="$(sinfo -h -N -n "$HOST" -o '%T' 2>/dev/null | head -n1 || true)"
    case "$state" in
        idle|idle\*|mixed|allocated|completing) return 0 ;;
        *) return 1 ;;
    esac
}

# --- 1. packages ----------------------------------------------------------------------
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 \
        || ! command -v munged >/dev/null 2>&1 || ! command -v sinfo >/dev/null 2>&1; then
    [ "${SLURM_SKIP_INSTALL:-0}" = 1 ] && die "slurm-wlm/munge not installed and SLURM_SKIP_INSTALL=1"
    log "installing slurm-wlm and munge from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # policy-rc.d: do not let the packages start their own services during install
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
    rm -f /usr/sbin/policy-rc.d
    trap - EXIT
fi

# --- 2. munge ---------------------------------------------------------------------------
id munge >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin munge
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    log "creating munge key"
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile=/etc/munge/munge.key --force
    else
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    fi
fi
chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge
chmod 0700 /etc/munge /var/lib/munge /var/log/munge
chmod 0755 /run/munge
chmod 0400 /etc/munge/munge.key
if ! pgrep -x munged >/dev/null; then
    log "starting munged"
    # munged refuses to run as root; -f skips its strict path-permission checks on odd hosts
    su -s /bin/sh munge -c "/usr/sbin/munged --force" \
        || /usr/sbin/munged --force
fi
for _ in $(seq 1 50); do munge -n </dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.2; done
munge -n </dev/null | unmunge >/dev/null 2>&1 || die "munge does not work (see /var/log/munge/munged.log)"

# --- 3. slurm.conf ------------------------------------------------------------------------
CPUS="$(nproc)"
# the node's layout as slurmd sees it (Boards/Sockets/Cores/Threads), so slurmd does not
# complain about a mismatch; fall back to CPUs only
LAYOUT="$(slurmd -C 2>/dev/null | head -n1 | tr ' ' '\n' \
          | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=' | tr '\n' ' ' || true)"
[ -n "$LAYOUT" ] || LAYOUT="CPUs=$CPUS"
MEM_MB="$(awk '/MemTotal/ {printf "%d", $2/1024}' /proc/meminfo)"
# leave room for the OS: advertise 90 % of memory
REAL_MB=$(( MEM_MB * 9 / 10 ))
mkdir -p "$CONF_DIR" "$LOG_DIR" "$SPOOL" "$SPOOLD" "$RUN_DIR"
CONF="$CONF_DIR/slurm.conf"
NEW_CONF="$(mktemp)"
cat > "$NEW_CONF" <<CONF
# Written by connectome_dask deploy/slurm/setup_slurm.sh: one node, this host.
ClusterName=connectome
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
StateSaveLocation=$SPOOL
SlurmdSpoolDir=$SPOOLD
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=30
KillWait=5
Waittime=0
# jobs that do not ask for memory get 1 GiB per CPU (not the whole node)
DefMemPerCPU=1024
NodeName=$HOST NodeAddr=127.0.0.1 ${LAYOUT}RealMemory=$REAL_MB State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
# OverSubscribe=FORCE:4 lets up to 4 jobs share a core: dask workers of tests are mostly idle
CONF
# No cgroup.conf: proctrack/linuxproc + task/none + jobacct_gather/none use no cgroup
# plugin (slurm 22.05 has no CgroupPlugin=disabled; a file left by an older run is removed).
if [ -f "$CONF_DIR/cgroup.conf" ] && grep -q 'connectome_dask' "$CONF_DIR/cgroup.conf"; then
    rm -f "$CONF_DIR/cgroup.conf"
fi
if ! cmp -s "$NEW_CONF" "$CONF"; then
    cp "$NEW_CONF" "$CONF"
    log "wrote $CONF (CPUs=$CPUS RealMemory=${REAL_MB}MB)"
    if pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null; then
        log "configuration changed: restarting the running SLURM daemons"
        bash "$(dirname "$0")/stop_slurm.sh" --keep-munge
    fi
fi
rm -f "$NEW_CONF"
chmod 0644 "$CONF"

# --- 4. daemons ---------------------------------------------------------------------------
if ! pgrep -x slurmctld >/dev/null; then
    log "starting slurmctld"
    slurmctld -f "$CONF" || die "slurmctld failed to start (see $LOG_DIR/slurmctld.log)"
fi
if ! pgrep -x slurmd >/dev/null; then
    log "starting slurmd"
    slurmd -f "$CONF" || die "slurmd failed to start (see $LOG_DIR/slurmd.log)"
fi

# --- 5. wait for the node -------------------------------------------------------------------
deadline=$(( $(date +%s) + TIMEOUT ))
while ! node_idle; do
    state="$(sinfo -h -N -n "$HOST" -o '%T' 2>/dev/null | head -n1 || true)"
    case "$state" in
        down*|drain*|fail*)
            # e.g. left down by an earlier run: bring it back
            scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "[setup_slurm] ERROR: node $HOST not idle after ${TIMEOUT}s (state: '${state:-no answer}')." >&2
        echo "[setup_slurm] last lines of $LOG_DIR/slurmctld.log and slurmd.log:" >&2
        tail -n 20 "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" >&2 2>/dev/null || true
        exit 1
    fi
    sleep 1
done
log "SLURM is up: $(sinfo -h -o '%P %a %D %T %C' | head -n1)"
