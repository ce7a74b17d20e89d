"""lf2 table with rows.seeds: seed means, spread columns, table2_diffs.csv, n = 1, missing seed."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats as sps

from lf2 import layout
from lf2.config import load_params
from lf2.errors import LF2Error
from lf2.report.spread import DIFF_COLUMNS
from lf2.report.tables import write_tables
from lf2.rows import rows_for
from tests.conftest import ROOT

#: per-seed mAP offsets (fractions); row j has base mAP 0.05 (j + 1)
SEED_SHIFT = {0: 0.00, 1: 0.02, 2: 0.04}


def _params(tmp_path: Path, seeds: list[int]) -> dict:
    p = load_params(ROOT / "params" / "default.yaml", [f"rows.seeds={seeds}"])
    p["paths"] = {"data": str(tmp_path / "data"), "runs": str(tmp_path / "runs"),
                  "results": str(tmp_path / "results")}
    return p


def _write(params: dict, noise: bool = True) -> None:
    for d in params["directions"]:
        for j, row in enumerate(rows_for(params)):
            for s in layout.seeds(params):
                # rows move together with the seed (paired), plus a row-specific wobble
                m = 0.05 * (j + 1) + SEED_SHIFT[s] + (0.005 * ((j + s) % 2) if noise else 0.0)
                p = Path(layout.metrics_path(params, d["name"], row, s))
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(json.dumps({"mAP": m, "rank1": m + 0.1, "rank5": 0.9, "rank10": 0.95,
                                         "rerank": False, "checkpoint": {"sha256": f"{s}" * 64}}))


def test_three_seeds_give_means_intervals_and_diffs(tmp_path: Path) -> None:
    params = _params(tmp_path, [0, 1, 2])
    _write(params)
    written = write_tables(params, layout.table_paths(params)[0])
    t2 = pd.read_csv(written[0])
    # baseline (j = 1): per seed 0.10 + {0, .02, .04} + {.005, 0, .005} -> percent 10.5, 12.0, 14.5
    vals = [10.5, 12.0, 14.5]
    line = t2[t2["Method"].str.startswith("Baseline")].iloc[0]
    assert line["A-to-B mAP"] == pytest.approx(12.3, abs=0.05)
    assert line["A-to-B n"] == 3
    low, high = sps.t.interval(0.95, 2, loc=sum(vals) / 3, scale=sps.sem(vals))
    assert line["A-to-B mAP ci95_low"] == pytest.approx(low, abs=0.05)
    assert line["A-to-B mAP ci95_high"] == pytest.approx(high, abs=0.05)
    assert line["A-to-B mAP std"] == pytest.approx(pd.Series(vals).std(), abs=0.05)
    assert list(t2.columns)[:5] == ["Method", "A-to-B mAP", "A-to-B Rank-1", "A-to-B Rank-5", "A-to-B Rank-10"]

    diffs = pd.read_csv(written[3])
    assert list(diffs.columns) == DIFF_COLUMNS
    comps = set(diffs["comparison"])
    assert {"baseline - direct", "no_fm - direct", "lf2_m48 - baseline", "lf2_m48 - no_fm",
            "no_fm - baseline"} <= comps
    rec = diffs[(diffs["direction"] == "A-to-B") & (diffs["comparison"] == "baseline - direct")
                & (diffs["metric"] == "mAP")].iloc[0]
    # baseline - direct per seed, from the same rule (the seed shift cancels: paired)
    per = [100 * (0.05 + 0.005 * ((1 + s) % 2)) - 100 * (0.005 * (s % 2)) for s in (0, 1, 2)]
    lo, hi = sps.t.interval(0.95, 2, loc=sum(per) / 3, scale=sps.sem(per))
    assert (rec["mean_diff"], rec["ci95_low"], rec["ci95_high"], rec["n"]) == (
        pytest.approx(sum(per) / 3, abs=0.005), pytest.approx(lo, abs=0.005), pytest.approx(hi, abs=0.005), 3)
    assert rec["verdict"] == "higher"

    md = written[1].read_text(encoding="utf-8")
    assert "Spread over seeds (n = 3)" in md and "## Paired differences over seeds" in md
    assert "| Baseline (only L_ReID^t) − Direct transfer | mAP |" in md
    assert md.count("seed2.json") == len(rows_for(params)) * 2


def test_one_seed_says_no_interval(tmp_path: Path) -> None:
    params = _params(tmp_path, [0])
    _write(params)
    written = write_tables(params, layout.table_paths(params)[0])
    t2 = pd.read_csv(written[0])
    assert t2["A-to-B n"].tolist() == [1] * len(t2) and t2["A-to-B mAP ci95_low"].isna().all()
    diffs = pd.read_csv(written[3])
    assert set(diffs["verdict"]) == {"n = 1, no interval"} and diffs["ci95_low"].isna().all()
    md = written[1].read_text(encoding="utf-8")
    assert "(n = 1, no interval)" in md
    assert pd.read_csv(written[4]).empty  # no eval_every: no leak lines


def test_missing_seed_metrics_names_the_file(tmp_path: Path) -> None:
    params = _params(tmp_path, [0, 1, 2])
    _write(params)
    victim = Path(layout.metrics_path(params, "B-to-A", "no_fm", 1))
    victim.unlink()
    with pytest.raises(LF2Error, match=str(victim)):
        write_tables(params, layout.table_paths(params)[0])


@pytest.mark.parametrize(("seeds", "fragment"), [("[]", "rows.seeds"), ("[1, 1]", "rows.seeds")])
def test_bad_seed_lists_are_params_errors(seeds: str, fragment: str) -> None:
    from lf2.errors import ParamsError

    with pytest.raises(ParamsError, match=fragment):
        load_params(ROOT / "params" / "default.yaml", [f"rows.seeds={seeds}"])


def test_interval_figure_draws_each_rows_ci(tmp_path: Path) -> None:
    from lf2.report.figures import draw_figures
    from lf2.report.intervals import plot_intervals

    vals = [50.0, 52.0, 57.0]
    fig = plot_intervals({"A": {"mAP": {"row a": vals, "row b": [40.0, 41.0, 45.0]}}})
    bar = fig.axes[0].lines[0]
    low, high = sps.t.interval(0.95, 2, loc=sum(vals) / 3, scale=sps.sem(vals))
    assert list(bar.get_xdata()) == [pytest.approx(low), pytest.approx(high)]
    one = plot_intervals({"A": {"mAP": {"row a": [50.0]}}})
    assert "n = 1, no interval" in one.axes[0].get_title()

    params = _params(tmp_path, [0, 1, 2])
    _write(params)
    written = draw_figures(params, tmp_path / "figs", ["intervals"])
    assert sorted(p.name for p in written) == ["intervals.pdf", "intervals.png"]


def test_leak_table_from_epoch_logs(tmp_path: Path) -> None:
    from lf2.rows import trained_rows

    params = _params(tmp_path, [0, 1])
    params["finetune"]["eval_every"] = 2
    _write(params)
    for d in params["directions"]:
        for row in trained_rows(params):
            for s in (0, 1):
                p = Path(layout.epochs_path(params, d["name"], row, s))
                p.parent.mkdir(parents=True, exist_ok=True)
                recs = [{"stage": "finetune", "epoch": e, "eval": {"mAP": m, "rank1": m, "note": "monitoring"}}
                        for e, m in ((2, 0.30 + 0.1 * s), (4, 0.25))]
                p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    written = write_tables(params, layout.table_paths(params)[0])
    leak = pd.read_csv(written[4])
    assert len(leak) == 2 * 2 * len(trained_rows(params))
    one = leak[(leak["row"] == "baseline") & (leak["seed"] == 1) & (leak["direction"] == "A-to-B")].iloc[0]
    # last epoch 4 (its own evaluation, 25.0), best on the test split epoch 2 (40.0)
    assert (one["last_epoch"], one["last_mAP"], one["best_epoch"], one["best_mAP"]) == (4, 25.0, 2, 40.0)
    assert one["inflation_mAP"] == pytest.approx(15.0)
    md = written[1].read_text(encoding="utf-8")
    assert "TEST-SET LEAK" in md and "| A-to-B | Baseline (only L_ReID^t) | 25.0 | 35.0 | +10.0 [" in md
