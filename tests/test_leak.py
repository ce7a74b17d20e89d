"""The leak meter on hand-made epoch logs."""

from __future__ import annotations

import pytest

from lf2.report.leak import LEAK_LABEL, build_leak_table, leak_line, render_leak_md


def _evals(maps: dict[int, float | None]) -> list[dict]:
    return [{"epoch": e, "eval": None if m is None else {"mAP": m, "rank1": m, "note": "monitoring"}}
            for e, m in maps.items()]


def test_best_epoch_beside_last() -> None:
    line = leak_line(_evals({2: 0.50, 4: 0.58, 6: 0.58, 8: 0.55}), last_map=0.551, last_epoch=8)
    assert line == {"last_epoch": 8, "last_mAP": 0.551, "best_epoch": 4, "best_mAP": 0.58,
                    "inflation_mAP": pytest.approx(0.029)}


def test_no_evaluations_no_line() -> None:
    assert leak_line(_evals({1: None, 2: None}), 0.5, 2) is None
    table = build_leak_table([("A-to-B", "baseline", 0)], lambda *k: _evals({1: None}), lambda *k: (0.5, 1))
    assert table.empty and render_leak_md(table, str) == []


def test_table_and_section_over_seeds() -> None:
    logs = {0: {1: 0.40, 2: 0.46}, 1: {1: 0.50, 2: 0.44}, 2: {1: 0.41, 2: 0.45}}
    last = {0: 0.46, 1: 0.44, 2: 0.45}
    keys = [("A-to-B", "baseline", s) for s in (0, 1, 2)]
    table = build_leak_table(keys, lambda d, r, s: _evals(logs[s]), lambda d, r, s: (last[s], 2))
    assert table["inflation_mAP"].tolist() == pytest.approx([0.0, 6.0, 0.0])
    assert table["best_epoch"].tolist() == [2, 1, 2]
    md = "\n".join(render_leak_md(table, lambda r: r.upper()))
    assert LEAK_LABEL in md
    assert "| A-to-B | BASELINE | 45.0 | 47.0 | +2.0 [" in md and md.rstrip().endswith("| 3 |")
