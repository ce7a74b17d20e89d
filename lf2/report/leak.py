"""The leak meter: what picking the best epoch ON THE TEST SPLIT would have reported.

The released LF² code, MMT, SpCL and fast-reid evaluate the target test split every epoch
and report the best epoch: the test split then selects the model, a test-set leak. This
project reports the LAST epoch. With ``finetune.eval_every`` > 0 the per-epoch test numbers
are in each run's ``epochs.jsonl`` (monitoring only); this table puts the test-selected
best epoch beside the last-epoch number, so the inflation is measured. Its numbers are
never used for anything else (no table, figure or choice reads them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd

from lf2.report.stats import NO_INTERVAL, summarize

LEAK_LABEL = "TEST-SET LEAK (best epoch chosen on the test split; never used)"
LEAK_COLUMNS = ["direction", "row", "seed", "last_epoch", "last_mAP", "best_epoch", "best_mAP",
                "inflation_mAP"]


def leak_line(evals: list[dict[str, Any]], last_map: float, last_epoch: int) -> dict[str, Any] | None:
    """Best test-split epoch vs the last epoch (mAP fractions), or None without evaluations.

    ``evals``: the epoch records of ``epochs.jsonl`` (those without ``eval`` are skipped).
    Ties go to the earliest epoch, as a "best so far" checkpoint keeps the first best.
    """
    scored = [(int(r["epoch"]), float(r["eval"]["mAP"])) for r in evals if r.get("eval")]
    if not scored:
        return None
    best_epoch, best = max(scored, key=lambda e: (e[1], -e[0]))
    return {"last_epoch": last_epoch, "last_mAP": last_map, "best_epoch": best_epoch, "best_mAP": best,
            "inflation_mAP": best - last_map}


def build_leak_table(
    keys: Iterable[tuple[str, str, int]],
    epochs_of: Callable[[str, str, int], list[dict[str, Any]]],
    last_of: Callable[[str, str, int], tuple[float, int]],
) -> pd.DataFrame:
    """One line per (direction, fine-tuning row, seed) with test evaluations; percent."""
    lines = []
    for direction, row, seed in keys:
        last_map, last_epoch = last_of(direction, row, seed)
        line = leak_line(epochs_of(direction, row, seed), last_map, last_epoch)
        if line is not None:
            lines.append({"direction": direction, "row": row, "seed": seed,
                          **{k: 100.0 * v if k.endswith("mAP") else v for k, v in line.items()}})
    return pd.DataFrame(lines, columns=LEAK_COLUMNS)


def render_leak_md(table: pd.DataFrame, display: Callable[[str], str]) -> list[str]:
    """The markdown section: mean inflation per (direction, row) over seeds, labelled."""
    if table.empty:
        return []
    out = [f"## {LEAK_LABEL}", "",
           "What a best-epoch-on-test protocol (the released code, MMT, SpCL, fast-reid) would "
           "report instead of our last epoch. Measured only, to show the inflation; nothing "
           "reads these numbers. mAP in percent, mean over seeds; the interval is the Student-t "
           "95% interval of the per-seed inflation.", "",
           "| Direction | Method | last epoch mAP | test-selected mAP | inflation | n |",
           "|---|---|---|---|---|---|"]
    for (direction, row), sub in table.groupby(["direction", "row"], sort=False):
        infl = summarize(sub["inflation_mAP"].tolist())
        ci = NO_INTERVAL if infl.ci_low is None else f"[{infl.ci_low:+.1f}, {infl.ci_high:+.1f}]"
        out.append(f"| {direction} | {display(str(row))} | {sub['last_mAP'].mean():.1f} | "
                   f"{sub['best_mAP'].mean():.1f} | {infl.mean:+.1f} {ci} | {infl.n} |")
    return [*out, ""]

