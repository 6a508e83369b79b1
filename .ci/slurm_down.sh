#!/usr/bin/env bash
# Stop the daemons .ci/slurm_up.sh started, by their PID files (jobs still running are cancelled first).
set -uo pipefail

RUN=${SLURM_CI_RUN:-/run/slurm-ci}
if command -v scancel >/dev/null && scontrol ping >/dev/null 2>&1; then
    scancel --full --quiet --user="$(id -un)" || true
fi
for pidfile in "$RUN/slurmd.pid" "$RUN/slurmctld.pid" "$RUN/slurmdbd.pid" /run/mysqld/mariadbd.pid \
    /run/munge/munged.pid; do
    [ -s "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 40); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
done
