"""benchmarks/power_goals.py on tables written from hand-made metrics (no training)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pandas as pd

from lf2 import layout
from lf2.report.run_metrics import reference_lf2_row
from lf2.report.tables import write_tables
from tests.conftest import ROOT
from tests.test_tables_seeds import _params, _write


def _module():
    spec = importlib.util.spec_from_file_location("power_goals", ROOT / "benchmarks" / "power_goals.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _results(tmp_path: Path, noise: bool) -> Path:
    params = _params(tmp_path, [0, 1, 2])
    _write(params, noise=noise)
    written = write_tables(params, layout.table_paths(params)[0])
    return written[0].parent


def test_goal_counts_follow_the_tables(tmp_path: Path) -> None:
    goals = _module()
    results = _results(tmp_path / "a", noise=True)
    table = pd.read_csv(results / "table2.csv")
    text = goals.goals_markdown(results)
    for d in goals.directions(table):
        std = table[f"{d} mAP std"].dropna()
        # every seed shifts every row by 0, 2, 4 points: std 2.0 (+ the wobble) per row
        line = next(ln for ln in text.splitlines() if ln.startswith(f"| {d} |"))
        assert f"{(std <= 2.0).sum()} of {len(std)}" in line
        assert "%" in line  # the supervised row exists in the default rows: a gap share


def test_compare_counts_verdict_disagreements(tmp_path: Path) -> None:
    goals = _module()
    a = _results(tmp_path / "a", noise=True)
    b = tmp_path / "b"
    shutil.copytree(a, b)
    diffs = pd.read_csv(b / "table2_diffs.csv")
    n = len(diffs)
    assert goals.compare_markdown(a, b).startswith(f"verdicts agree on {n} of {n}")
    flipped = diffs.index[:2]  # another machine's run: two verdicts change
    diffs.loc[flipped, "verdict"] = [
        "higher" if v == "not distinguishable" else "not distinguishable" for v in diffs.loc[flipped, "verdict"]
    ]
    diffs.to_csv(b / "table2_diffs.csv", index=False)
    text = goals.compare_markdown(a, b).splitlines()
    assert text[0].startswith(f"verdicts agree on {n - 2} of {n}")
    assert len(text) == 3 and all(diffs.loc[i, "comparison"] in line for i, line in zip(flipped, text[1:], strict=True))


def test_readme_block_is_the_main_rows_mAP_diffs(tmp_path: Path) -> None:
    """--readme: one line per comparison among Direct, Baseline, w/o FM and LF² at the
    ablation M_t, each cell the csv's mean, interval and verdict; then the goals."""
    goals = _module()
    results = _results(tmp_path / "a", noise=True)
    params = _params(tmp_path / "a", [0, 1, 2])
    diffs = pd.read_csv(results / "table2_diffs.csv")
    text = goals.readme_markdown(results, params)
    lines = text.splitlines()
    assert lines[0].startswith("| mAP, paired over seeds (n = 3) |")
    main = {"direct", "baseline", "no_fm", reference_lf2_row(params)}
    wanted = [c for c in dict.fromkeys(diffs[diffs.metric == "mAP"].comparison)
              if set(c.split(" - ")) <= main]
    body = lines[2:lines.index("")]
    assert len(body) == len(wanted) == 6
    rec = diffs[(diffs.metric == "mAP") & (diffs.comparison == "baseline - direct")].iloc[0]
    first = next(ln for ln in body if ln.startswith("| Baseline"))
    assert f"{rec.mean_diff:+.1f}".replace("-", "−") in first and rec.verdict in first
    assert "Power goals:" in lines and goals.goals_markdown(results) in text
