#!/usr/bin/env bash
# Seed study on the synthetic default (A-to-B, M_t = rows.ablation_clusters): fine-tuning
# seeds 1 and 2 beside the suite's own seed-0 runs, plus LF2 with fm_mode=released for every
# seed. Run from a checkout where `snakemake -c2` has finished. One torch thread per run.
# Then: python benchmarks/seed_summary.py
set -euo pipefail
P=params/default.yaml
M=$(lf2 params --params $P --get rows.ablation_clusters)
for seed in 0 1 2; do
  for spec in "baseline baseline" "no_fm no_fm" "lf2 lf2" "lf2_released lf2 --set model.fm_mode=released"; do
    set -- $spec; name=$1; variant=$2; shift 2
    [ "$seed" = 0 ] && [ "$name" != lf2_released ] && continue  # seed 0 = the suite's runs
    out=seeds/s$seed/$name
    mkdir -p "$out"
    lf2 finetune --params $P --variant "$variant" --clusters "$M" --init runs/A-to-B/pretrain/seed0/model.pt \
      --target data/synth_b --out "$out/model.pt" --set seed=$seed --set threads=1 "$@" > "$out.log" 2>&1
    lf2 evaluate --params $P --checkpoint "$out/model.pt" --manifest data/synth_b --out "$out/metrics.json" > /dev/null
  done
done
