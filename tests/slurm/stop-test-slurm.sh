#!/usr/bin/env bash
# Stop the cluster of start-test-slurm.sh: cancel jobs, stop every daemon by its pid file,
# drop the accounting database and the job state.
set -uo pipefail

if command -v squeue >/dev/null && squeue -h >/dev/null 2>&1; then
  squeue -h -o %A | xargs -r scancel
  for _ in $(seq 1 50); do [[ -z "$(squeue -h 2>/dev/null)" ]] && break; sleep 0.2; done
fi

alive() { [[ -e /proc/$1 ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
stop_pidfile() {  # SIGTERM, wait up to 20 s, then SIGKILL
  local f=$1 pid
  [[ -s $f ]] || return 0
  pid=$(cat "$f")
  if alive "$pid"; then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.2; done
    alive "$pid" && kill -KILL "$pid"
  fi
  rm -f "$f"
}

stop_pidfile /run/slurm/slurmd.pid
stop_pidfile /run/slurm/slurmctld.pid
stop_pidfile /run/slurm/slurmdbd.pid
mariadb -u root -e 'DROP DATABASE IF EXISTS slurm_acct_db' >/dev/null 2>&1
stop_pidfile /run/mysqld/mysqld.pid
stop_pidfile /run/munge/munged.pid
rm -rf /var/spool/slurm/ctld/* /var/spool/slurm/d/*
