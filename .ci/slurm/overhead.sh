#!/usr/bin/env bash
# The SLURM profile's overhead: the same DAG locally (snakemake -c2) and through
# workflow/profiles/slurm (partitions filled in), one after the other on this machine,
# each from a clean copy. Prints both wall times, the ratio, and the summed time of the
# jobs' own commands (Snakemake's benchmark files) of each run.
#   .ci/slurm/overhead.sh [PARAMS [PARTITION [TARGET...]]]
# defaults: params/smoke.yaml, sinfo's default partition, all
# PARAMS may lie outside the repository: it is copied into each copy's params/.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PARAMS_SRC=$(realpath "${1:-$ROOT/params/smoke.yaml}")
PARAMS=params/$(basename "$PARAMS_SRC")
PART=${2:-$(sinfo -h -o %P | tr -d ' ' | grep '\*$' | tr -d '*')}
shift $(($# < 2 ? $# : 2))
TARGETS=("${@:-all}")
BASE=$(mktemp -d /tmp/lf2-overhead.XXXXXX)
copy() {
  mkdir -p "$1" && cp "$ROOT/Snakefile" "$1" && cp -r "$ROOT/workflow" "$ROOT/params" "$1"
  cp "$PARAMS_SRC" "$1/$PARAMS" 2>/dev/null || true  # (same file when it is in params/)
  sed -i "s/<cpu-partition>/$PART/; s/<gpu-partition>/$PART/" "$1/workflow/profiles/slurm/config.yaml"
}
timed() {  # timed DIR ARGS...: run snakemake in DIR, print its wall seconds
  local dir=$1; shift
  local t0; t0=$(date +%s)
  (cd "$dir" && snakemake "${TARGETS[@]}" --configfile "$PARAMS" "$@" > run.log 2>&1) || { echo "failed: see $dir/run.log" >&2; exit 1; }
  echo $(($(date +%s) - t0))
}
jobs_s() {  # summed wall seconds of the jobs' commands (first column of benchmark .tsv files)
  find "$1" -name '*.tsv' -path '*bench*' -exec awk 'FNR==2 {s+=$1} END {printf "%.0f", s}' {} +
}
copy "$BASE/local"; copy "$BASE/slurm"
local_s=$(timed "$BASE/local" -c2)
slurm_s=$(timed "$BASE/slurm" --profile workflow/profiles/slurm)
sbatch_n=$(grep -c "has been submitted with SLURM jobid" "$BASE/slurm/run.log" || true)
printf 'params %s, targets %s, partition %s, %s\n' "$PARAMS" "${TARGETS[*]}" "$PART" "$(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf 'local  %6.0f s  (jobs %s s)\n' "$local_s" "$(jobs_s "$BASE/local")"
printf 'slurm  %6.0f s  (jobs %s s, %s sbatch)\n' "$slurm_s" "$(jobs_s "$BASE/slurm")" "$sbatch_n"
python3 -c "print(f'ratio  {$slurm_s / $local_s:.2f}')"
echo "runs kept in $BASE"
