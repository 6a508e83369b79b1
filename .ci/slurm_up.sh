#!/usr/bin/env bash
# A single-node SLURM (Debian's slurm-wlm, with munge and slurmdbd accounting on MariaDB) for the SLURM tests.
# No systemd: every daemon is started directly and writes a PID file (slurm's under $SLURM_CI_RUN), which
# .ci/slurm_down.sh reads to stop them. No cgroups: proctrack/linuxproc, task/none. Needs root.
# Prints "SLURM is up (N CPUs, M MB)" when `sinfo` shows the node idle, or exits 1 naming the daemon
# that did not come up (its log is printed).
set -euo pipefail

RUN=${SLURM_CI_RUN:-/run/slurm-ci}
LOGS=$RUN/log
CONF=/etc/slurm

if ! command -v slurmctld >/dev/null || ! command -v slurmdbd >/dev/null || ! command -v mariadbd >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge slurmdbd mariadb-server >/dev/null
fi

mkdir -p "$RUN" "$LOGS" /run/munge /run/mysqld /var/spool/slurmctld /var/spool/slurmd /var/lib/munge /var/log/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge
chown mysql:mysql /run/mysqld
chown slurm:slurm /var/spool/slurmctld "$RUN" "$LOGS"
chmod 0755 "$RUN"

wait_for() {  # wait_for <what> <log> <command...>: up to 30 s for the command to succeed
    local what=$1 log=$2
    shift 2
    for _ in $(seq 60); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    echo "error: $what did not come up; its log ($log):" >&2
    tail -n 30 "$log" >&2 || true
    exit 1
}

# munge: authentication between the daemons and the commands
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid --socket=/run/munge/munge.socket.2 \
    --log-file=/var/log/munge/munged.log --force
wait_for munged /var/log/munge/munged.log sh -c 'munge -n | unmunge'

# MariaDB: the accounting database behind slurmdbd (sacct tells submitit how a job ended)
if [ ! -d /var/lib/mysql/mysql ]; then
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql >"$LOGS/mariadb-install.log" 2>&1
fi
mariadbd --user=mysql --datadir=/var/lib/mysql --socket=/run/mysqld/mysqld.sock --skip-networking \
    --pid-file=/run/mysqld/mariadbd.pid --log-error=/run/mysqld/mariadbd.log &
wait_for mariadbd /run/mysqld/mariadbd.log mariadb --socket=/run/mysqld/mysqld.sock -e "SELECT 1"
mariadb --socket=/run/mysqld/mysqld.sock -e "
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm-ci';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"

HOST=$(hostname -s)
NODE=$(slurmd -C | head -n 1)  # NodeName=<host> CPUs=... RealMemory=...
cat >"$CONF/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
StorageType=accounting_storage/mysql
StorageHost=localhost
StoragePort=3306
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=slurm-ci
PidFile=$RUN/slurmdbd.pid
LogFile=$LOGS/slurmdbd.log
EOF
chown slurm:slurm "$CONF/slurmdbd.conf"
chmod 0600 "$CONF/slurmdbd.conf"

cat >"$CONF/slurm.conf" <<EOF
ClusterName=ci
SlurmctldHost=$HOST(127.0.0.1)
AuthType=auth/munge
# a requeued job may start again after cred_expire seconds (default 120)
AuthInfo=cred_expire=30
SlurmUser=slurm
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
JobRequeue=1
KillWait=10
MinJobAge=60
$NODE NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

runuser -u slurm -- slurmdbd
wait_for slurmdbd "$LOGS/slurmdbd.log" sacctmgr -n list cluster
sacctmgr -i add cluster ci >/dev/null 2>&1 || true
runuser -u slurm -- slurmctld
wait_for slurmctld "$LOGS/slurmctld.log" scontrol ping
slurmd
wait_for slurmd "$LOGS/slurmd.log" sh -c 'sinfo -h -o %t | grep -qx idle'
echo "SLURM is up ($(sinfo -h -o '%c CPUs, %m MB'))"
