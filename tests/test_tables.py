"""lf2 table: values, order, rounding, errors; the paper-values data file."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
import pytest

from lf2 import layout
from lf2.cli import main
from lf2.config import load_params, rows_for
from lf2.errors import LF2Error
from lf2.report.paper import load_paper_values, paper_direction, table2_values
from lf2.report.run_metrics import collect_metrics, pct, reference_lf2_row
from lf2.report.tables import build_table2, write_tables

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "params" / "default.yaml"


def _metrics(i: int, j: int) -> dict:
    """Distinct, hand-checkable numbers per (direction i, row j)."""
    base = 0.10 * (j + 1) + 0.01 * i
    return {
        "mAP": base + 0.00049,  # 100x = ...049 -> rounds down
        "rank1": base + 0.00051,  # rounds up
        "rank5": min(1.0, base + 0.2),
        "rank10": min(1.0, base + 0.3),
        "mINP": base / 2,
        "cmc": [min(1.0, base + 0.01 * k) for k in range(50)],
        "rerank": False,
        "checkpoint": {"path": "x/model.pt", "sha256": "ab" * 32},
    }


def _metrics_file(params: dict, direction: str, row: str) -> Path:
    return Path(layout.metrics_paths(params, direction, row)[0])


def _write_fake_metrics(params: dict) -> dict[tuple[str, str], dict]:
    out = {}
    for i, d in enumerate(params["directions"]):
        for j, row in enumerate(rows_for(params)):
            m = _metrics(i, j)
            p = _metrics_file(params, d["name"], row)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(json.dumps(m))
            out[(d["name"], row)] = m
    return out


@pytest.fixture()
def params(tmp_path: Path) -> dict:
    p = load_params(DEFAULT, ["rows.seeds=[0]"])  # one run per row (seeds: test_tables_seeds.py)
    p["paths"] = {"data": str(tmp_path / "data"), "runs": str(tmp_path / "runs"),
                  "results": str(tmp_path / "results")}
    return p


def _real(params: dict) -> dict:
    """Same params, but the datasets are the real Duke / Market ones (no validation needed)."""
    p = copy.deepcopy(params)
    p["datasets"] = {"duke": {"kind": "dukemtmc", "root": "/x"},
                     "market": {"kind": "market1501", "root": "/y"}}
    p["directions"] = [{"name": "M2D", "source": "market", "target": "duke"},
                       {"name": "D2M", "source": "duke", "target": "market"}]
    p["rows"] = {"clusters": [500, 700, 1000], "ablation_clusters": 700}
    return p


# --------------------------------------------------------------------------- paper values


def test_paper_values_parse_and_hold_table2() -> None:
    df = load_paper_values()
    t2 = df[df["table"] == "II"]
    assert list(dict.fromkeys(t2["row"])) == [
        "direct", "baseline", "no_fm", "lf2_m500", "lf2_m700", "lf2_m900"]
    assert len(t2) == 12
    assert table2_values(df, "lf2_m700", "D-to-M") == pytest.approx(
        {"mAP": 83.2, "rank1": 92.8, "rank5": float("nan"), "rank10": float("nan")}, nan_ok=True)
    assert table2_values(df, "direct", "M-to-D")["rank1"] == 42.6
    assert table2_values(df, "lf2_m48", "D-to-M") is None
    t1 = df[df["table"] == "I"]
    assert t1["method"].nunique() == 18 and len(t1) == 36
    ours = t1[t1["method"] == "LF² (Ours)"].set_index("direction")
    assert ours.loc["M-to-D", ["mAP", "rank1", "rank5", "rank10"]].tolist() == [73.5, 83.7, 91.9, 94.3]
    hcd = t1[t1["method"] == "HCD"]
    assert hcd["rank5"].isna().all() and hcd["rank10"].isna().all()


def test_paper_values_errors(tmp_path: Path) -> None:
    bad = tmp_path / "p.csv"
    bad.write_text("table,row,category,method,venue,direction,mAP,rank1,rank5,rank10\n"
                   "II,direct,,Direct,x,D-to-M,127.8,55.6,,\n")
    with pytest.raises(LF2Error, match=r"mAP.*outside \[0, 100\]"):
        load_paper_values(bad)
    bad.write_text("table,method,direction\nII,x,D-to-M\n")
    with pytest.raises(LF2Error, match="missing column"):
        load_paper_values(bad)
    bad.write_text("table,row,category,method,venue,direction,mAP,rank1,rank5,rank10\n"
                   "II,direct,,Direct,x,A-to-B,27.8,55.6,,\n")
    with pytest.raises(LF2Error, match="direction"):
        load_paper_values(bad)


def test_paper_direction_only_for_real_kinds(params: dict) -> None:
    assert [paper_direction(params, d) for d in params["directions"]] == [None, None]
    real = _real(params)
    assert [paper_direction(real, d) for d in real["directions"]] == ["M-to-D", "D-to-M"]


# --------------------------------------------------------------------------- table values


def test_pct_rounds_half_up_to_one_decimal() -> None:
    assert pct(0.83249) == 83.2
    assert pct(0.8325) == 83.3
    assert pct(0.8335) == 83.4
    assert pct(1.0) == 100.0
    assert pct(0.0) == 0.0


def test_table2_values_order_and_rounding(params: dict, tmp_path: Path) -> None:
    _write_fake_metrics(params)
    t2 = build_table2(params, collect_metrics(params))
    assert t2["Method"].tolist() == [
        "Direct transfer", "Baseline (only L_ReID^t)", "LF² w/o FM",
        "LF² (M_t = 32)", "LF² (M_t = 48)", "LF² (M_t = 64)", "Supervised (target's true labels)"]
    assert list(t2.columns) == ["Method",
                                "A-to-B mAP", "A-to-B Rank-1", "A-to-B Rank-5", "A-to-B Rank-10",
                                "B-to-A mAP", "B-to-A Rank-1", "B-to-A Rank-5", "B-to-A Rank-10"]
    # row j=1 (baseline), direction i=1 (B-to-A): base = 0.21
    assert t2.loc[1, "B-to-A mAP"] == 21.0  # 21.049 -> 21.0
    assert t2.loc[1, "B-to-A Rank-1"] == 21.1  # 21.051 -> 21.1
    assert t2.loc[1, "B-to-A Rank-5"] == 41.0
    assert t2.loc[0, "A-to-B Rank-10"] == 40.0


def test_write_tables_files(params: dict, tmp_path: Path) -> None:
    _write_fake_metrics(params)
    out = tmp_path / "results" / "table2.csv"
    written = write_tables(params, out)
    assert [p.name for p in written] == ["table2.csv", "table2.md", "table1.csv", "table2_diffs.csv", "leak.csv"]
    text = out.read_text(encoding="utf-8")
    assert text.splitlines()[1].startswith("Direct transfer,10.0,10.1,30.0,40.0,11.0,11.1")
    back = pd.read_csv(out)
    assert len(back) == 7
    md = (tmp_path / "results" / "table2.md").read_text(encoding="utf-8")
    assert "LAST epoch" in md
    # synthetic: the paper's numbers are shown apart, for reference, all of Table II
    assert "for reference only" in md
    paper = load_paper_values()
    for _, rec in paper[paper["table"] == "II"].iterrows():
        assert f"{rec['mAP']:.1f}" in md and f"{rec['rank1']:.1f}" in md
    assert "| LF² (M_t = 48) | 50.0 | 50.1 | 70.0 | 80.0 |" in md
    t1 = pd.read_csv(tmp_path / "results" / "table1.csv")
    assert len(t1) == 19
    last = t1.iloc[-1]
    assert last["Method"].startswith("LF² (M_t = 48)")  # ablation_clusters = 48
    assert last["A-to-B mAP"] == 50.0 and last["B-to-A Rank-1"] == 51.1
    assert pd.isna(last["D-to-M mAP"])
    assert t1.iloc[0]["Method"] == "SPGAN+LMP" and t1.iloc[0]["M-to-D Rank-10"] == 68.0
    # no temporary files left behind
    assert not [p for p in (tmp_path / "results").iterdir() if p.name.startswith(".")]


def test_real_data_put_ours_beside_paper(params: dict, tmp_path: Path) -> None:
    real = _real(params)
    _write_fake_metrics(real)
    write_tables(real, tmp_path / "results" / "table2.csv")
    md = (tmp_path / "results" / "table2.md").read_text(encoding="utf-8")
    assert "(the paper's M-to-D)" in md and "(the paper's D-to-M)" in md
    assert "for reference only" not in md
    # row lf2_m700 (j=4), D2M (i=1): base 0.51; paper D-to-M M=700: 83.2 / 92.8
    assert "| LF² (M_t = 700) | 51.0 | 83.2 | 51.1 | 92.8 | 71.0 | 81.0 |" in md
    # M_t = 1000 is not in the paper: dashes, and a note
    assert "| LF² (M_t = 1000) | 60.0 | — | 60.1 | — |" in md
    assert "no line for: LF² (M_t = 1000)" in md
    t1 = pd.read_csv(tmp_path / "results" / "table1.csv")
    last = t1.iloc[-1]
    assert reference_lf2_row(real) == "lf2_m700"
    assert last["D-to-M mAP"] == 51.0 and last["M-to-D mAP"] == 50.0
    assert list(t1.columns)[3:] == [f"{d} {m}" for d in ("D-to-M", "M-to-D")
                                     for m in ("mAP", "Rank-1", "Rank-5", "Rank-10")]


def test_reference_row_falls_back_to_nearest_m(params: dict) -> None:
    params["rows"] = {"clusters": [20, 40, 90], "ablation_clusters": 48}
    assert reference_lf2_row(params) == "lf2_m40"


def test_missing_metrics_file_is_named(params: dict, tmp_path: Path) -> None:
    _write_fake_metrics(params)
    victim = _metrics_file(params, "B-to-A", "no_fm")
    victim.unlink()
    with pytest.raises(LF2Error, match=str(victim)):
        write_tables(params, tmp_path / "results" / "table2.csv")
    assert not (tmp_path / "results" / "table2.csv").exists()


def test_bad_metrics_value(params: dict, tmp_path: Path) -> None:
    _write_fake_metrics(params)
    p = _metrics_file(params, "A-to-B", "direct")
    p.write_text(json.dumps({**json.loads(p.read_text()), "mAP": 83.2}))
    with pytest.raises(LF2Error, match=r"'mAP' is 83.2; expected a fraction"):
        collect_metrics(params)


def test_cli_table(params: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    pfile = tmp_path / "params.yaml"
    pfile.write_text(yaml.safe_dump(params))
    out = tmp_path / "results" / "table2.csv"
    assert main(["table", "--params", str(pfile), "--out", str(out)]) == 1
    assert "does not exist" in capsys.readouterr().err
    _write_fake_metrics(params)
    assert main(["table", "--params", str(pfile), "--out", str(out)]) == 0
    assert out.is_file() and out.with_name("table1.csv").is_file()
