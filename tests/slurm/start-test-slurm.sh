#!/usr/bin/env bash
# Start a throwaway single-node SLURM cluster on loopback for the tests (Debian, as root, no
# systemd): munged, MariaDB + slurmdbd (so `sacct` works: submitit needs it to notice jobs that die
# without a result), slurmctld and slurmd. Installs missing packages. Every start is fresh: empty
# job state and accounting database. Stop it with stop-test-slurm.sh.
set -euo pipefail

HOST="$(hostname -s)"
CPUS="$(getconf _NPROCESSORS_ONLN)"  # not nproc: it follows OMP_NUM_THREADS, which pytest-xdist workers set
MEM_MB=$(( $(awk '/^MemTotal:/{print $2}' /proc/meminfo) / 1024 * 95 / 100 ))  # below real memory
DB_PASS="${SLURM_TEST_DB_PASS:-tinygpt-slurm-test}"

wait_for() {  # wait_for <seconds> <command...>
  local deadline=$(( SECONDS + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    (( SECONDS < deadline )) || { echo "timeout waiting for: $*" >&2; return 1; }
    sleep 0.2
  done
}

if [[ -s /run/slurm/slurmctld.pid ]] && kill -0 "$(cat /run/slurm/slurmctld.pid)" 2>/dev/null; then
  echo "slurmctld is already running: run stop-test-slurm.sh first" >&2
  exit 1
fi

missing=()
for p in slurmctld slurmd slurm-client munge slurmdbd mariadb-server; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if (( ${#missing[@]} )); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# munge: systemd would create the runtime directory; the key comes from the package's postinst.
[[ -s /etc/munge/munge.key ]] || mungekey --create --keyfile=/etc/munge/munge.key
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
munge -n 2>/dev/null | unmunge >/dev/null 2>&1 || runuser -u munge -- /usr/sbin/munged
wait_for 10 sh -c 'munge -n | unmunge'

install -d -m 0755 /run/slurm /var/log/slurm /var/spool/slurm/ctld /var/spool/slurm/d
rm -rf /var/spool/slurm/ctld/* /var/spool/slurm/d/*  # old drained nodes and jobs would come back

install -d -o mysql -g mysql -m 0755 /run/mysqld
[[ -d /var/lib/mysql/mysql ]] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
if ! mariadb -u root -e 'SELECT 1' >/dev/null 2>&1; then
  setsid /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 \
    >>/var/log/slurm/mariadb.log 2>&1 </dev/null &
fi
wait_for 60 mariadb -u root -e 'SELECT 1'
# A fresh accounting database: job ids restart at 1 and must not meet old records.
mariadb -u root -e "DROP DATABASE IF EXISTS slurm_acct_db;
  CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '${DB_PASS}';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"

cat > /etc/slurm/slurmdbd.conf <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurm/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=${DB_PASS}
StorageLoc=slurm_acct_db
CONF
chmod 0600 /etc/slurm/slurmdbd.conf
slurmdbd
wait_for 30 bash -c 'exec 3<>/dev/tcp/127.0.0.1/6819'

cat > /etc/slurm/slurm.conf <<CONF
ClusterName=tinygpt-test
SlurmctldHost=${HOST}
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
ReturnToService=2
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
StateSaveLocation=/var/spool/slurm/ctld
SlurmdSpoolDir=/var/spool/slurm/d
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
EnforcePartLimits=ALL
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/none
NodeName=${HOST} CPUs=${CPUS} RealMemory=${MEM_MB} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

slurmctld
slurmd
if ! wait_for 60 sh -c 'sinfo -h -n "$(hostname -s)" -o %T | grep -Eq "^(idle|mixed|allocated)$"'; then
  sinfo -R; tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log; exit 1
fi
sinfo
