#!/usr/bin/env bash
# Stand up a single-node SLURM (munge, MariaDB, slurmdbd, slurmctld, slurmd) from Debian
# packages on a fresh machine, as root, without systemd. Every daemon runs in the
# foreground under `setsid`; its PID goes to $LF2_SLURM_STATE/pids for teardown.sh.
#   .ci/slurm/setup.sh                 # with accounting (slurmdbd on MariaDB)
#   LF2_SLURM_ACCOUNTING=0 .ci/slurm/setup.sh   # without: no MariaDB, no slurmdbd
# Partition `ci` holds the one node, whose line comes from `slurmd -C`.
set -euo pipefail
STATE=${LF2_SLURM_STATE:-/tmp/lf2-slurm}
ACCOUNTING=${LF2_SLURM_ACCOUNTING:-1}
CLUSTER=lf2ci
[ "$(id -u)" = 0 ] || { echo "setup.sh: must run as root" >&2; exit 1; }
if [ -s "$STATE/pids" ]; then echo "setup.sh: $STATE/pids exists; run teardown.sh first" >&2; exit 1; fi

pkgs="slurm-wlm slurm-client munge"
[ "$ACCOUNTING" = 1 ] && pkgs="$pkgs slurmdbd mariadb-server"
missing=$(for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing" ]; then
  apt-get update -q
  # policy-rc.d 101: the packages must not try to start services (no systemd here)
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
  rm -f /usr/sbin/policy-rc.d
fi

mkdir -p "$STATE"/{ctld,d,log}
: > "$STATE/pids"
start() {  # start NAME CMD...: run CMD in the foreground of its own session, record its PID
  local name=$1; shift
  setsid "$@" > "$STATE/log/$name.out" 2>&1 < /dev/null &
  echo "$name $!" >> "$STATE/pids"
}
wait_for() {  # wait_for SECONDS WHAT CMD...
  local t=$1 what=$2; shift 2
  for _ in $(seq "$t"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  echo "setup.sh: $what did not come up in ${t}s; logs in $STATE/log" >&2; exit 1
}

# munge
[ -s /etc/munge/munge.key ] || mungekey --create
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge && chown munge:munge /run/munge /var/log/munge /var/lib/munge
start munged runuser -u munge -- /usr/sbin/munged --foreground
wait_for 20 munged sh -c 'munge -n | unmunge'

HOST=$(hostname -s)
NODE=$(slurmd -C | head -n1)
if [ "$ACCOUNTING" = 1 ]; then
  ACCT="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux"
else
  ACCT="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
fi

# memory: task/cgroup holds each job to its --mem (over it: OUT_OF_MEMORY, which
# tests/test_slurm_failures.py provokes), through the cgroup-v1 memory hierarchy these
# machines mount; without one, jobs may use any memory (and that test fails).
if [ -w /sys/fs/cgroup/memory ]; then
  TASK=task/cgroup
  printf 'CgroupPlugin=cgroup/v1\nConstrainRAMSpace=yes\nConstrainCores=no\nConstrainDevices=no\n' \
    > /etc/slurm/cgroup.conf
else
  TASK=task/none
  echo "setup.sh: no cgroup-v1 memory hierarchy; memory limits are not enforced" >&2
fi

cat > /etc/slurm/slurm.conf <<CONF
# written by lf2 .ci/slurm/setup.sh
ClusterName=$CLUSTER
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=$TASK
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MinJobAge=300
$ACCT
$NODE State=UNKNOWN
PartitionName=ci Nodes=$HOST Default=YES MaxTime=60 State=UP
CONF
# accounting: MariaDB + slurmdbd, and the cluster registered before slurmctld starts
if [ "$ACCOUNTING" = 1 ]; then
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
  [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql > "$STATE/log/install-db.out"
  start mariadbd /usr/sbin/mariadbd --user=mysql --datadir=/var/lib/mysql \
    --socket=/run/mysqld/mysqld.sock --bind-address=127.0.0.1 --pid-file=/run/mysqld/mariadbd.pid
  wait_for 60 MariaDB mariadb-admin ping
  mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'lf2ci';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
  cat > /etc/slurm/slurmdbd.conf <<CONF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=lf2ci
StorageLoc=slurm_acct_db
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
CONF
  chmod 600 /etc/slurm/slurmdbd.conf
  start slurmdbd /usr/sbin/slurmdbd -D
  wait_for 60 slurmdbd sacctmgr -n list cluster
  sacctmgr -i add cluster "$CLUSTER" >/dev/null || true
fi


start slurmctld /usr/sbin/slurmctld -D -i
wait_for 60 slurmctld scontrol ping
start slurmd /usr/sbin/slurmd -D
wait_for 60 "node $HOST idle" sh -c "sinfo -h -n $HOST -o %T | grep -qx idle"
echo "setup.sh: SLURM up (accounting=$ACCOUNTING); PIDs in $STATE/pids"
sinfo
