"""Figure ``intervals``: each Table II row's seed mean and Student-t 95% CI, per direction.

Two panels per direction (mAP, Rank-1), one horizontal bar per row in table order; the
dots are the single seeds. With n = 1 only the point is drawn and the panel says
"n = 1, no interval".
"""

from __future__ import annotations

from typing import Any

from lf2.errors import LF2Error
from lf2.report.plot import label_colours, new_figure, row_label
from lf2.report.spread import SPREAD_METRICS
from lf2.report.stats import NO_INTERVAL, summarize

#: ``data[direction][metric label][row label]`` = per-seed percent values
IntervalData = dict[str, dict[str, dict[str, list[float]]]]


def plot_intervals(data: IntervalData, colours: dict[str, Any] | None = None) -> Any:
    if not data:
        raise LF2Error("no rows to plot")
    labels = [lab for per_metric in data.values() for rows in per_metric.values() for lab in rows]
    colours = colours or label_colours(labels)
    ncols = max(len(m) for m in data.values())
    fig, axes = new_figure(len(data), ncols, panel=(4.6, 0.45 * len(dict.fromkeys(labels)) + 1.2))
    for r, (direction, per_metric) in enumerate(data.items()):
        for c, (metric, rows) in enumerate(per_metric.items()):
            ax = axes[r][c]
            n = 0
            for y, (label, values) in enumerate(rows.items()):
                s = summarize(values)
                n = s.n
                colour = colours[label]
                if s.ci_low is not None:
                    ax.plot([s.ci_low, s.ci_high], [y, y], color=colour, linewidth=3, alpha=0.6)
                ax.plot(values, [y] * len(values), linestyle="none", marker="|", color=colour, alpha=0.7)
                ax.plot([s.mean], [y], marker="o", color=colour)
            ax.set_yticks(range(len(rows)), list(rows), fontsize=7)
            ax.invert_yaxis()
            ax.set_xlabel(f"{metric} (%)")
            ax.grid(axis="x", alpha=0.3)
            ax.set_title(f"{direction}: {metric}, " + (f"mean and 95% CI, n = {n}" if n > 1 else NO_INTERVAL),
                         fontsize=9)
    fig.suptitle("Table II rows: seed mean (dot), Student-t 95% interval (bar), seeds (ticks)")
    return fig


def intervals_figure(params: dict) -> Any:
    """The figure from every seed's metrics file (an error names a missing one)."""
    from lf2 import layout
    from lf2.report.curves import all_row_colours
    from lf2.report.run_metrics import collect_seed_metrics
    from lf2.rows import rows_for

    per_seed = collect_seed_metrics(params)
    seeds = layout.seeds(params)
    data: IntervalData = {}
    for d in params["directions"]:
        data[d["name"]] = {label: {row_label(params, row): [100.0 * per_seed[(d["name"], row, s)][key]
                                                            for s in seeds] for row in rows_for(params)}
                           for key, label in SPREAD_METRICS}
    return plot_intervals(data, colours=all_row_colours(params))
