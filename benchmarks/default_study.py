"""Seed study of the frozen synthetic default on its TEST targets (after tuning, never for it).

Runs Table II's rows of ``params/default.yaml`` for each direction and seed in one process:
Direct transfer (source pre-training seed s), Baseline, LF² w/o FM and LF² at
``rows.ablation_clusters`` fine-tuned from pre-training seed s with seed s, and the supervised
reference (pre-training on the target's labelled train split), each evaluated on the target's
query/gallery split. Nothing here chooses anything: the params are frozen before it runs
(docs/tuning.md). Datasets and pre-trainings come from the same cache as
``benchmarks/tune_synthetic.py`` (source pre-training does not see the target)::

    python benchmarks/default_study.py --work /tmp/mb-tune --seeds 0 1 2 --set threads=1
    python benchmarks/default_study.py --work /tmp/mb-tune --summary

``--summary`` prints each row's mAP and Rank-1 (mean ± std [Student-t 95%]), the paired
differences over seeds with their verdict, and the share of the gap to the supervised
reference each adapted row closes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from tune_synthetic import Workspace, evaluate, stats_cell  # noqa: E402

from lf2.config import apply_overrides, load_params, validate_params  # noqa: E402

ROWS = ("direct", "baseline", "no_fm", "lf2", "supervised")
COMPARISONS = (("baseline", "direct"), ("no_fm", "direct"), ("lf2", "direct"), ("no_fm", "baseline"),
               ("lf2", "baseline"), ("lf2", "no_fm"))


def run(ws: Workspace, base: dict, seed: int, directions: list[str] | None, log: Path, done: set,
        rows: list[str]) -> None:
    from lf2.train.finetune import run_finetune

    params = validate_params(apply_overrides(base, [f"seed={seed}"]))
    for d in params["directions"]:
        if directions and d["name"] not in directions:
            continue
        source = ws.dataset(params["datasets"][d["source"]])
        target = ws.dataset(params["datasets"][d["target"]])
        m = params["rows"]["ablation_clusters"]
        for row in rows:
            if (d["name"], row, seed) in done:
                continue
            t0 = time.perf_counter()
            pre = ws.pretrained(params, source, target, f"pre-{d['name']}")
            t_pre = time.perf_counter() - t0
            if row == "direct":
                ckpt = pre
            elif row == "supervised":
                ckpt = ws.pretrained(params, target, target, f"suptest-{d['name']}")
            else:
                out = ws.root / "runs" / f"test-{d['name']}-{row}-s{seed}" / "model.pt"
                ckpt = run_finetune(params, variant=row, clusters=m, init=pre, target=target, out=out,
                                    resume=False)
            t_train = time.perf_counter() - t0 - (0.0 if row == "direct" else t_pre)
            rec = {"direction": d["name"], "row": row, "seed": seed, **evaluate(params, ckpt, target),
                   "train_s": round(t_train, 1)}
            with log.open("a") as fh:
                fh.write(json.dumps(rec) + "\n")
            print(json.dumps(rec), flush=True)


def summary(log: Path) -> str:
    from lf2.report.stats import paired_difference

    recs = {}
    for line in log.read_text().splitlines():
        r = json.loads(line)
        recs[(r["direction"], r["row"], r["seed"])] = r
    out = []
    for d in dict.fromkeys(k[0] for k in recs):
        seeds = sorted({k[2] for k in recs if k[0] == d})
        out += [f"**{d}** (seeds {', '.join(map(str, seeds))}; {recs[(d, 'direct', seeds[0])]['num_query']} "
                "queries)", "", "| row | n | mAP | Rank-1 | gap to supervised closed (%) |", "|---|---|---|---|---|"]
        for row in ROWS:
            ss = [s for s in seeds if (d, row, s) in recs]
            if not ss:
                continue
            closed = [100 * (recs[(d, row, s)]["mAP"] - recs[(d, "direct", s)]["mAP"])
                      / (recs[(d, "supervised", s)]["mAP"] - recs[(d, "direct", s)]["mAP"]) for s in ss
                      if (d, "supervised", s) in recs and (d, "direct", s) in recs]
            gap = stats_cell(closed) if closed and row not in ("direct", "supervised") else "—"
            out.append(f"| {row} | {len(ss)} | {stats_cell([recs[(d, row, s)]['mAP'] for s in ss])} | "
                       f"{stats_cell([recs[(d, row, s)]['rank1'] for s in ss])} | {gap} |")
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
    ap.add_argument("--params", default=str(ROOT / "params/default.yaml"))
    ap.add_argument("--work", default="/tmp/lf2-tune")
    ap.add_argument("--log", default=None, help="JSON lines (default: <work>/default_study.jsonl)")
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--directions", nargs="*", default=None)
    ap.add_argument("--rows", nargs="*", default=list(ROWS), choices=ROWS)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--summary", action="store_true")
    args = ap.parse_args(argv)
    work = Path(args.work)
    log = Path(args.log) if args.log else work / "default_study.jsonl"
    if args.summary:
        print(summary(log))
        return 0
    base = apply_overrides(load_params(args.params), args.overrides)
    work.mkdir(parents=True, exist_ok=True)
    done = set()
    if log.is_file():
        done = {(r["direction"], r["row"], r["seed"]) for r in map(json.loads, log.read_text().splitlines())}
    for seed in args.seeds:
        run(Workspace(work), base, seed, args.directions, log, done, args.rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
