"""The embedded benchmark's power goals, checked on a finished suite's results.

Reads ``results/table2.csv`` and ``results/table2_diffs.csv`` (lf2 table's outputs) and
prints, per direction, against the goals of docs/results.md ("Power goals"):

- each row's seed std of mAP (goal: <= 2 points);
- each paired mAP difference's 95% half-width (goal: <= 2 points);
- the share of the gap to the supervised reference that Baseline closes (goal: >= 40%).

``--compare OTHER`` also puts the verdicts of two runs' table2_diffs.csv side by side (e.g.
the suite with ``threads: 1`` and with ``threads: 2``) and counts the disagreements::

    python benchmarks/power_goals.py /tmp/suite3/results --compare /tmp/suite3t2/results

``--readme`` prints instead the README's results block: the paired mAP differences among
Direct transfer, Baseline, LF² w/o FM and LF² at the ablation M_t, per direction, with
their verdicts, then the power goals; it is pasted into the README verbatim::

    python benchmarks/power_goals.py results --readme --params params/default.yaml
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

STD_GOAL = 2.0
HALF_WIDTH_GOAL = 2.0
GAP_GOAL = 40.0
BASELINE_LABEL = "Baseline (only L_ReID^t)"


def _read(results: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    table, diffs = results / "table2.csv", results / "table2_diffs.csv"
    for f in (table, diffs):
        if not f.is_file():
            raise SystemExit(f"{f} does not exist: run the suite (snakemake -c2) first")
    return pd.read_csv(table), pd.read_csv(diffs)


def directions(table: pd.DataFrame) -> list[str]:
    return [c[: -len(" mAP std")] for c in table.columns if c.endswith(" mAP std")]


def goals_markdown(results: Path) -> str:
    table, diffs = _read(results)
    out = ["| direction | rows with mAP std <= 2 | paired mAP half-widths <= 2 | "
           "Baseline gap closed (goal >= 40%) |", "|---|---|---|---|"]
    for d in directions(table):
        std = table[f"{d} mAP std"].dropna()
        mine = diffs[(diffs.direction == d) & (diffs.metric == "mAP")]
        half = (mine.ci95_high - mine.ci95_low) / 2
        base = table.loc[table.Method == BASELINE_LABEL, f"{d} gap closed %"]
        gap = f"{base.iloc[0]:.0f}%" if len(base) and pd.notna(base.iloc[0]) else "not run"
        out.append(
            f"| {d} | {(std <= STD_GOAL).sum()} of {len(std)} (std {std.min():.1f} to "
            f"{std.max():.1f}) | {(half <= HALF_WIDTH_GOAL).sum()} of {len(half)} (half-width "
            f"{half.min():.1f} to {half.max():.1f}) | {gap} |"
        )
    return "\n".join(out)


def _cell(r: pd.Series) -> str:
    verdict = f"**{r.verdict}**" if r.verdict == "lower" else r.verdict
    return f"{r.mean_diff:+.1f} [{r.ci95_low:+.1f}, {r.ci95_high:+.1f}] {verdict}".replace("-", "−")


def readme_markdown(results: Path, params: dict) -> str:
    """The README's block: the main rows' paired mAP differences, then the power goals."""
    from lf2.report.run_metrics import display_name, reference_lf2_row

    table, diffs = _read(results)
    main = ["direct", "baseline", "no_fm", reference_lf2_row(params)]
    mine = diffs[diffs.metric == "mAP"]
    dirs = directions(table)
    n = sorted({int(v) for v in mine.n})
    out = [f"| mAP, paired over seeds (n = {', '.join(map(str, n))}) | " + " | ".join(dirs) + " |",
           "|---" * (len(dirs) + 1) + "|"]
    for comparison in dict.fromkeys(mine.comparison):
        a, b = str(comparison).split(" - ")
        if a not in main or b not in main:
            continue
        cells = []
        for d in dirs:
            hit = mine[(mine.direction == d) & (mine.comparison == comparison)]
            cells.append(_cell(hit.iloc[0]) if len(hit) else "not run")
        out.append(f"| {display_name(params, a)} − {display_name(params, b)} | " + " | ".join(cells) + " |")
    return "\n".join([*out, "", "Power goals:", "", goals_markdown(results)])


def compare_markdown(a: Path, b: Path) -> str:
    da, db = _read(a)[1], _read(b)[1]
    keys = ["direction", "comparison", "metric"]
    both = da.merge(db, on=keys, suffixes=("_a", "_b"), how="inner")  # what both runs compare
    agree = both.verdict_a == both.verdict_b
    lines = [f"verdicts agree on {int(agree.sum())} of {len(both)} paired differences that both "
             f"runs have ({a}: {len(da)}, {b}: {len(db)})"]
    for _, r in both[~agree].iterrows():
        lines.append(
            f"- {r.direction}, {r.comparison}, {r.metric}: {r.verdict_a} "
            f"({r.mean_diff_a:+.1f} [{r.ci95_low_a:+.1f}, {r.ci95_high_a:+.1f}]) vs {r.verdict_b} "
            f"({r.mean_diff_b:+.1f} [{r.ci95_low_b:+.1f}, {r.ci95_high_b:+.1f}])"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path, help="a suite's results/ folder")
    ap.add_argument("--compare", type=Path, help="another run's results/ folder")
    ap.add_argument("--readme", action="store_true", help="print the README's results block")
    ap.add_argument("--params", type=Path, default=Path("params/default.yaml"),
                    help="the run's params (row names; with --readme)")
    args = ap.parse_args()
    if args.readme:
        from lf2.config import load_params

        print(readme_markdown(args.results, load_params(args.params)))
        return
    print(goals_markdown(args.results))
    if args.compare:
        print()
        print(goals_markdown(args.compare))
        print()
        print(compare_markdown(args.results, args.compare))


if __name__ == "__main__":
    main()
