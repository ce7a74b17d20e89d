"""Where the seed spread of the embedded benchmark comes from: the test split or the training.

The issue's power goals (a seed std <= 2 mAP, paired 95% half-widths <= 2) are not met by
the default suite (docs/results.md). Two ways to narrow an interval are a bigger test
split and more seeds; this script measures which one the noise would answer to, on a
finished suite (``snakemake -c2`` in RUN), without training anything:

1. Every evaluate job of the DAG is run again through ``lf2 evaluate`` with the DAG's
   arguments, saving the query and gallery features (cached under
   ``RUN/results/noise/``; the job's own metrics file is not touched).
2. **Test size.** For each fraction f of the test identities, ``--draws`` random identity
   subsets (one subset shared by every row and seed of a direction in a draw, as a smaller
   test split would be): each row's seed std of mAP and each table2_diffs comparison's
   paired Student-t 95% half-width, averaged over the draws. If the half-widths hardly move
   from f = 1/2 to f = 1, a bigger test split will not narrow them.
   A least-squares fit of half-width^2 = a + b / identities over the fractions gives the
   half-width an unlimited test split would leave, sqrt(max(a, 0)): the part of the interval
   that only more seeds (or less training noise) can narrow. An extrapolation from three
   points, not a measurement.
3. **Test sampling at full size.** A bootstrap over the query identities (the gallery
   fixed), ``--boot`` resamples, the same resample for both rows of a comparison: how much
   one model's mAP, and one seed's paired difference, would move with another draw of the
   test identities, beside the observed seed std on the one test split.

    python benchmarks/noise_sources.py /tmp/suite4 --out /tmp/noise.md

Writes a markdown report (stdout, or ``--out``). Runs on the CPU with the params' threads.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

FRACTIONS = (0.25, 0.5, 1.0)
Key = tuple[str, str, int]  # direction, row, seed


# --------------------------------------------------------------------------- statistics


def identity_subset(pids: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A random ``fraction`` of the distinct identities of ``pids`` (at least 2), sorted."""
    ids = np.unique(pids)
    k = max(2, int(round(fraction * len(ids))))
    return np.sort(rng.choice(ids, size=min(k, len(ids)), replace=False))


def bootstrap_query_index(q_pids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Query rows of a resample of the query identities with replacement (all of each
    drawn identity's queries, as often as it is drawn)."""
    ids = np.unique(q_pids)
    drawn = rng.choice(ids, size=len(ids), replace=True)
    rows_of = {pid: np.flatnonzero(q_pids == pid) for pid in ids}
    return np.concatenate([rows_of[pid] for pid in drawn])


def half_width(a: Sequence[float], b: Sequence[float]) -> float:
    """Student-t 95% half-width of the paired mean difference a - b (n >= 2)."""
    from lf2.report.stats import paired_difference

    d = paired_difference(list(a), list(b), what="noise study")
    return float(d.ci_high - d.mean)


def floor_fit(identities: Sequence[int], widths: Sequence[float]) -> float:
    """sqrt(max(a, 0)) of the least-squares fit width^2 = a + b / identities (>= 2 sizes)."""
    x = 1.0 / np.asarray(identities, dtype=np.float64)
    y = np.asarray(widths, dtype=np.float64) ** 2
    if len(set(x.tolist())) < 2:
        raise ValueError("floor_fit needs at least two test sizes")
    b, a = np.polyfit(x, y, 1)
    return math.sqrt(max(float(a), 0.0))


def sample_std(values: Sequence[float]) -> float:
    return float(np.std(np.asarray(values, dtype=np.float64), ddof=1))


# --------------------------------------------------------------------------- features


def _evaluate_jobs(params: Mapping[str, Any], params_file: str) -> dict[Key, Any]:
    from lf2.workflow_dag import build_jobs

    out = {}
    for job in build_jobs(dict(params), params_file):
        if job.rule == "evaluate":
            w = job.wildcards
            out[(w["direction"], w["row"], int(str(w["seed"]).removeprefix("seed")))] = job
    return out


def extract(run: Path, params_file: str) -> tuple[dict[Key, dict[str, np.ndarray]], dict, dict]:
    """Features of every evaluate job (cached), and per direction the test ids."""
    import os

    from lf2 import layout
    from lf2.cli import main
    from lf2.config import load_params
    from lf2.data.manifest import load_manifest

    os.chdir(run)
    params = load_params(params_file)
    jobs = _evaluate_jobs(params, params_file)
    cache = run / Path(layout.metrics_dir(params)).parent / "noise"
    feats: dict[Key, dict[str, np.ndarray]] = {}
    for key, job in sorted(jobs.items()):
        npz = cache / f"{key[0]}--{key[1]}--seed{key[2]}.npz"
        if not npz.is_file():
            npz.parent.mkdir(parents=True, exist_ok=True)
            args = [*shlex.split(job.args), "--out", str(npz.with_suffix(".json")),
                    "--save-features", str(npz)]
            if main(["evaluate", *args]) != 0:
                raise SystemExit(f"lf2 evaluate failed for {key}")
        with np.load(npz) as z:
            feats[key] = {"query": z["query"], "gallery": z["gallery"]}
    ids = {}
    for d in params["directions"]:
        m = load_manifest(layout.manifest_path(params, d["target"]))
        ids[d["name"]] = {s: (np.asarray(m.pids(s)), np.asarray(m.camids(s))) for s in ("query", "gallery")}
    return feats, ids, params


def map_on(f: Mapping[str, np.ndarray], ids: Mapping[str, tuple], q_rows: np.ndarray,
           g_rows: np.ndarray) -> float:
    """mAP (percent) of the query rows ``q_rows`` against the gallery rows ``g_rows``."""
    import torch

    from lf2.eval.ranking import evaluate_features

    (qp, qc), (gp, gc) = ids["query"], ids["gallery"]
    res = evaluate_features(torch.from_numpy(f["query"][q_rows]), torch.from_numpy(f["gallery"][g_rows]),
                            qp[q_rows], gp[g_rows], qc[q_rows], gc[g_rows], max_rank=10)
    return 100.0 * float(res["mAP"])


# --------------------------------------------------------------------------- the study


def study(feats: Mapping[Key, Mapping[str, np.ndarray]], ids: Mapping[str, Mapping[str, tuple]],
          pairs: Sequence[tuple[str, str]], rows: Sequence[str], seeds: Sequence[int],
          fractions: Sequence[float], draws: int, boot: int, seed: int = 0) -> dict[str, Any]:
    """Both measurements of the module docstring, per direction."""
    rng = np.random.default_rng(seed)
    report: dict[str, Any] = {}
    for direction, split_ids in ids.items():
        qp, gp = split_ids["query"][0], split_ids["gallery"][0]
        sizes: dict[float, dict[str, Any]] = {}
        for f in fractions:
            n_draws = 1 if f >= 1.0 else draws
            std_rows: dict[str, list[float]] = {r: [] for r in rows}
            hw: dict[tuple[str, str], list[float]] = {p: [] for p in pairs}
            for _ in range(n_draws):
                keep = identity_subset(qp, f, rng) if f < 1.0 else np.unique(qp)
                q_rows, g_rows = np.flatnonzero(np.isin(qp, keep)), np.flatnonzero(np.isin(gp, keep))
                m = {(r, s): map_on(feats[(direction, r, s)], split_ids, q_rows, g_rows)
                     for r in rows for s in seeds}
                for r in rows:
                    std_rows[r].append(sample_std([m[(r, s)] for s in seeds]))
                for a, b in pairs:
                    hw[(a, b)].append(half_width([m[(a, s)] for s in seeds], [m[(b, s)] for s in seeds]))
            sizes[f] = {"identities": len(keep), "draws": n_draws,
                        "row_std": {r: float(np.mean(v)) for r, v in std_rows.items()},
                        "half_width": {p: float(np.mean(v)) for p, v in hw.items()}}
        all_g = np.arange(len(gp))
        full = {(r, s): map_on(feats[(direction, r, s)], split_ids, np.arange(len(qp)), all_g)
                for r in rows for s in seeds}
        boot_maps: dict[tuple[str, int], list[float]] = {(r, s): [] for r in rows for s in seeds}
        for _ in range(boot):
            q_rows = bootstrap_query_index(qp, rng)
            for r in rows:
                for s in seeds:
                    boot_maps[(r, s)].append(map_on(feats[(direction, r, s)], split_ids, q_rows, all_g))
        se_row = {r: float(np.sqrt(np.mean([np.var(boot_maps[(r, s)], ddof=1) for s in seeds]))) for r in rows}
        se_pair = {(a, b): float(np.sqrt(np.mean([np.var(np.subtract(boot_maps[(a, s)], boot_maps[(b, s)]), ddof=1)
                                                  for s in seeds]))) for a, b in pairs}
        obs_row = {r: sample_std([full[(r, s)] for s in seeds]) for r in rows}
        obs_pair = {(a, b): sample_std([full[(a, s)] - full[(b, s)] for s in seeds]) for a, b in pairs}
        ns = [sizes[f]["identities"] for f in fractions]
        floor = {p: floor_fit(ns, [sizes[f]["half_width"][p] for f in fractions]) for p in pairs}
        report[direction] = {"sizes": sizes, "floor": floor, "se_row": se_row, "se_pair": se_pair,
                             "obs_row": obs_row, "obs_pair": obs_pair,
                             "queries": len(qp), "identities": len(np.unique(qp))}
    return report


def render(report: Mapping[str, Any], pairs: Sequence[tuple[str, str]], rows: Sequence[str],
           seeds: Sequence[int], boot: int) -> str:
    out = [f"Seeds {', '.join(map(str, seeds))} (n = {len(seeds)}); mAP in points; "
           f"bootstrap over query identities with {boot} resamples.", ""]
    for direction, rep in report.items():
        fr = sorted(rep["sizes"])
        out += [f"**{direction}** ({rep['identities']} test identities, {rep['queries']} queries)", "",
                "Paired 95% half-width against the share of test identities kept (mean over draws):", "",
                "| comparison | " + " | ".join(f"{rep['sizes'][f]['identities']} ids ({rep['sizes'][f]['draws']} draws)"
                                                for f in fr) + " | unlimited (fit) |",
                "|---|" + "---:|" * (len(fr) + 1)]
        for p in pairs:
            out.append(f"| {p[0]} − {p[1]} | " + " | ".join(f"{rep['sizes'][f]['half_width'][p]:.1f}" for f in fr)
                       + f" | {rep['floor'][p]:.1f} |")
        out += ["", "Seed std on the one test split against the bootstrap SE over test identities:", "",
                "| row or comparison | seed std (n seeds) | test-sampling SE (one seed, mean) |", "|---|---:|---:|"]
        for r in rows:
            out.append(f"| {r} | {rep['obs_row'][r]:.2f} | {rep['se_row'][r]:.2f} |")
        for p in pairs:
            out.append(f"| {p[0]} − {p[1]} | {rep['obs_pair'][p]:.2f} | {rep['se_pair'][p]:.2f} |")
        out.append("")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a finished suite's working directory")
    ap.add_argument("--params", default="params/default.yaml", help="its params file (relative to RUN)")
    ap.add_argument("--fractions", type=float, nargs="+", default=list(FRACTIONS))
    ap.add_argument("--draws", type=int, default=20)
    ap.add_argument("--boot", type=int, default=100)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    from lf2 import layout
    from lf2.report.tables import diff_pairs
    from lf2.rows import rows_for

    run = args.run.resolve()
    out_path = args.out.resolve() if args.out else None
    feats, ids, params = extract(run, args.params)
    seeds = layout.seeds(params)
    if len(seeds) < 2:
        raise SystemExit(f"{run}: rows.seeds has {len(seeds)} seed; the study needs at least 2")
    rows, pairs = rows_for(params), diff_pairs(params)
    report = study(feats, ids, pairs, rows, seeds, args.fractions, args.draws, args.boot)
    text = render(report, pairs, rows, seeds, args.boot)
    if out_path:
        out_path.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
