"""Seed study of the frozen synthetic default on its TEST targets (after tuning, never for it).

Runs Table II's rows of ``params/default.yaml`` for each direction and seed in one process:
Direct transfer (source pre-training seed s), Baseline, LF² w/o FM and LF² at
``rows.ablation_clusters`` fine-tuned from pre-training seed s with seed s, and the supervised
reference (the DAG's supervised row: the same fine-tuning on the target's true training
labels), each evaluated on the target's query/gallery split, by the suite's own jobs
(``benchmarks/_rows.py``). Nothing here chooses anything: the params are frozen before it runs
(docs/tuning.md). Datasets and pre-trainings come from the same cache as
``benchmarks/tune_synthetic.py`` (source pre-training does not see the target unless
``pretrain.target_bn``)::

    python benchmarks/default_study.py --work /tmp/mb-tune --seeds 0 1 2 --set threads=1
    python benchmarks/default_study.py --work /tmp/mb-tune --summary

``--summary`` prints each row's mAP and Rank-1 (mean ± std [Student-t 95%]), the paired
differences over seeds with their verdict, and the share of the gap to the supervised
reference each adapted row closes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

import _rows as study  # noqa: E402

from lf2.config import validate_params  # noqa: E402

COMPARISONS = (("baseline", "direct"), ("no_fm", "direct"), ("lf2", "direct"), ("no_fm", "baseline"),
               ("lf2", "baseline"), ("lf2", "no_fm"))


def summary(log: Path) -> str:
    from lf2.report.stats import paired_difference

    recs = {(r["direction"], r["row"], r["seed"]): r for r in study.read_log(log)}
    out = []
    for d in dict.fromkeys(k[0] for k in recs):
        seeds = sorted({k[2] for k in recs if k[0] == d})
        out += [f"**{d}** (seeds {', '.join(map(str, seeds))}; {recs[(d, 'direct', seeds[0])]['num_query']} "
                "queries)", "", "| row | n | mAP | Rank-1 | gap to supervised closed (%) |", "|---|---|---|---|---|"]
        for row in study.ROWS:
            ss = [s for s in seeds if (d, row, s) in recs]
            if not ss:
                continue
            closed = [100 * (recs[(d, row, s)]["mAP"] - recs[(d, "direct", s)]["mAP"])
                      / (recs[(d, "supervised", s)]["mAP"] - recs[(d, "direct", s)]["mAP"]) for s in ss
                      if (d, "supervised", s) in recs and (d, "direct", s) in recs]
            gap = study.stats_cell(closed) if closed and row not in ("direct", "supervised") else "—"
            out.append(f"| {row} | {len(ss)} | {study.stats_cell([recs[(d, row, s)]['mAP'] for s in ss])} | "
                       f"{study.stats_cell([recs[(d, row, s)]['rank1'] for s in ss])} | {gap} |")
        out += ["", "| comparison (mAP) | n | mean diff | 95% CI | half-width | verdict |", "|---|---|---|---|---|---|"]
        for a, b in COMPARISONS:
            ss = [s for s in seeds if (d, a, s) in recs and (d, b, s) in recs]
            if not ss:
                continue
            diff = paired_difference([recs[(d, a, s)]["mAP"] for s in ss], [recs[(d, b, s)]["mAP"] for s in ss])
            ci = f"[{diff.ci_low:+.1f}, {diff.ci_high:+.1f}]" if diff.n > 1 else "—"
            hw = f"{diff.half_width:.1f}" if diff.half_width is not None else "—"
            out.append(f"| {a} − {b} | {diff.n} | {diff.mean:+.1f} | {ci} | {hw} | {diff.verdict} |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    study.add_study_arguments(ap, "default_study.jsonl", "override a params value (e.g. threads=1)")
    args = study.study_args(ap, argv)
    if args.summary:
        print(summary(args.log))
        return 0
    ws, done, params = study.Workspace(args.work), study.done_keys(args.log), validate_params(args.base)
    for seed in args.seeds:
        study.run_seed(ws, params, seed, args.rows, args.log, done, args.directions)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
