"""Summarise benchmarks/seed_study.sh: mAP / Rank-1 per row and seed, mean and std (markdown)."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import yaml

ROWS = [("Direct transfer", None), ("Baseline", "baseline"), ("LF² w/o FM", "no_fm"),
        ("LF² (FM paper)", "lf2"), ("LF² (FM released)", "lf2_released")]


def metrics(path: Path) -> tuple[float, float]:
    d = json.loads(path.read_text())
    return 100 * d["mAP"], 100 * d["rank1"]


def main(root: Path = Path(".")) -> None:
    m = yaml.safe_load((root / "params/default.yaml").read_text())["rows"]["ablation_clusters"]
    suite = root / "results/metrics/A-to-B"
    seeds = [0, 1, 2]
    print("| row | " + " | ".join(f"seed {s} mAP / R1" for s in seeds) + " | mAP mean ± std |")
    print("|---|" + "---|" * (len(seeds) + 1))
    for label, name in ROWS:
        cells, maps = [], []
        for s in seeds:
            if name is None:
                path = suite / "direct" / "seed0.json"
            elif s == 0 and name != "lf2_released":
                path = suite / (f"lf2_m{m}" if name == "lf2" else name) / "seed0.json"
            else:
                path = root / f"seeds/s{s}/{name}/metrics.json"
            if not path.is_file():
                cells.append("—")
                continue
            mp, r1 = metrics(path)
            maps.append(mp)
            cells.append(f"{mp:.1f} / {r1:.1f}")
        spread = f"{statistics.mean(maps):.1f} ± {statistics.stdev(maps):.1f}" if len(maps) > 1 else "—"
        print(f"| {label} | " + " | ".join(cells) + f" | {spread} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("."))
