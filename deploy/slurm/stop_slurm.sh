#!/usr/bin/env bash
# Stop the single-node SLURM started by deploy/slurm/setup_slurm.sh.
#
# Usage: bash deploy/slurm/stop_slurm.sh [--keep-munge]
#
# Cancels remaining jobs, then stops slurmd, slurmctld and munged (by the
# pids in their pid files, else by exact process name). Safe to run when
# nothing is running. Configuration, keys and packages stay in place, so a
# later setup_slurm.sh starts quickly.
set -uo pipefail

log() { echo "[stop_slurm] $*" >&2; }

if command -v scancel >/dev/null 2>&1 && pgrep -x slurmctld >/dev/null; then
    scancel --user="$(id -un)" >/dev/null 2>&1 || true
fi

stop() {  # stop NAME PIDFILE
    local name="$1" pidfile="$2" pid=""
    [ -s "$pidfile" ] && pid="$(cat "$pidfile")"
    if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
        pid="$(pgrep -x "$name" | head -n1 || true)"
    fi
    [ -n "$pid" ] || return 0
    log "stopping $name (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
    log "$name did not exit, sending SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
}

stop slurmd /run/slurm/slurmd.pid
stop slurmctld /run/slurm/slurmctld.pid
[ "${1:-}" = --keep-munge ] || stop munged /run/munge/munged.pid
exit 0
