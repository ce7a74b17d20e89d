#!/usr/bin/env bash
# Stop the daemons .ci/slurm/setup.sh started, by the PIDs it recorded (last started first).
set -uo pipefail
STATE=${LF2_SLURM_STATE:-/tmp/lf2-slurm}
[ -s "$STATE/pids" ] || { echo "teardown.sh: no $STATE/pids; nothing to stop"; exit 0; }
tac "$STATE/pids" | while read -r name pid; do
  kill -TERM "$pid" 2>/dev/null || continue
  for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$pid" 2>/dev/null && { echo "teardown.sh: $name ($pid) ignored TERM, killing"; kill -KILL "$pid"; }
  echo "teardown.sh: stopped $name ($pid)"
done
rm -f "$STATE/pids"
