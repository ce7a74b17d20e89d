"""Per-rule time of a finished Snakemake run, from its benchmark files.

Snakemake writes one ``logs/benchmarks/<job>.tsv`` per job (lf2.layout.benchmark_path);
this sums them per rule (the job name's first ``--`` part) and prints a markdown table:
jobs, summed wall and CPU seconds, mean wall per job, peak RSS. Used for the suite figures
in docs/performance.md:

    python benchmarks/suite_times.py /path/to/run          # the folder Snakemake ran in
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

from lf2 import layout


def rule_times(run: Path) -> dict[str, dict[str, float]]:
    """rule -> {jobs, wall_s, cpu_s, max_rss_mb} summed over the run's benchmark files."""
    folder = (run / layout.benchmark_path("x")).parent
    files = sorted(folder.glob("*.tsv"))
    if not files:
        raise SystemExit(f"no benchmark files in {folder}: is {run} a folder Snakemake ran in?")
    out: dict[str, dict[str, float]] = defaultdict(lambda: {"jobs": 0, "wall_s": 0.0, "cpu_s": 0.0,
                                                            "max_rss_mb": 0.0})
    for f in files:
        with f.open() as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        rule = f.stem.split("--")[0]
        acc = out[rule]
        acc["jobs"] += 1
        acc["wall_s"] += float(row["s"])
        acc["cpu_s"] += float(row["cpu_time"])
        rss = row.get("max_rss", "-")
        acc["max_rss_mb"] = max(acc["max_rss_mb"], float(rss) if rss not in ("-", "NA") else 0.0)
    return dict(out)


def markdown(times: dict[str, dict[str, float]]) -> str:
    lines = ["| rule | jobs | wall s (sum) | CPU s (sum) | mean wall per job | peak RSS MB |",
             "|---|---:|---:|---:|---:|---:|"]
    for rule, t in sorted(times.items()):
        lines.append(f"| {rule} | {t['jobs']:.0f} | {t['wall_s']:.0f} | {t['cpu_s']:.0f} | "
                     f"{t['wall_s'] / t['jobs']:.1f} | {t['max_rss_mb']:.0f} |")
    jobs = sum(t["jobs"] for t in times.values())
    wall = sum(t["wall_s"] for t in times.values())
    cpu = sum(t["cpu_s"] for t in times.values())
    lines.append(f"| **all** | {jobs:.0f} | {wall:.0f} | {cpu:.0f} | | |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="the folder Snakemake ran in")
    print(markdown(rule_times(ap.parse_args().run)))


if __name__ == "__main__":
    main()
