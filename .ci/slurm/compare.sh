#!/usr/bin/env bash
# The SLURM overhead of two commits side by side: .ci/slurm/overhead.sh of REF (from a git
# worktree, its own lf2 first on PYTHONPATH) and of this checkout, interleaved REF, this, REF,
# this, ... N times each (default 2), on the same cluster. REF's runs use the executor its
# profile names, so it must be installed (upstream's "slurm" comes with ./workflow/executor).
#   .ci/slurm/compare.sh REF [N [PARAMS [PARTITION]]]
# Prints each run's overhead.sh report; docs/performance.md "SLURM overhead" has the results.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
REF=${1:?usage: compare.sh REF [N [PARAMS [PARTITION]]]}
N=${2:-2}
PARAMS=${3:-params/smoke.yaml}
PART=${4:-$(sinfo -h -o %P | tr -d ' ' | grep '\*$' | tr -d '*')}
OLD=$(mktemp -d /tmp/lf2-compare.XXXXXX)
trap 'git -C "$ROOT" worktree remove --force "$OLD" 2>/dev/null || true' EXIT
git -C "$ROOT" worktree add -f -q --detach "$OLD" "$REF"
for i in $(seq "$N"); do
  echo "=== $REF, run $i, $(date -u +%FT%TZ)"
  PYTHONPATH="$OLD${PYTHONPATH:+:$PYTHONPATH}" bash "$OLD/.ci/slurm/overhead.sh" "$OLD/$PARAMS" "$PART"
  echo "=== $(git -C "$ROOT" rev-parse --short HEAD) (this checkout), run $i, $(date -u +%FT%TZ)"
  bash "$ROOT/.ci/slurm/overhead.sh" "$ROOT/$PARAMS" "$PART"
done
