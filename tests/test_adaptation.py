"""End to end on the embedded synthetic pair: fine-tuning beats direct transfer ON AVERAGE.

No single seeded run is compared with another: on another CPU one seeded run can land on
either side (issue 10: LF² 0.566 against direct 0.577 on an EPYC). Instead, for each of
``SEEDS`` the test pre-trains on A (params ``seed`` = s), evaluates that model on B (Direct
transfer), fine-tunes LF² from it with the same seed s (a paired replicate, as the DAG's
``rows.seeds``) and evaluates again. The assertion is on the paired differences
d_s = mAP(LF²) − mAP(direct): the lower end of their one-sided 95% Student-t interval,
mean(d) − t_{0.95, n-1} · sd(d)/√n, must be above 0.

Why it cannot flake: the margin was measured before the settings were fixed. Spread study
(2-core CPU shared with other jobs, torch threads 1, 2026-12-01, teacher_bn own):
``python tests/test_adaptation.py 0 1 2 3 finetune.eval_every=1`` and ``... 4 5 6 7 ...``,

    seed          0     1     2     3     4     5     6     7
    direct     46.3  46.9  37.0  40.8  38.7  48.3  48.1  48.1   mAP on B, %
    LF²        57.1  59.0  56.5  66.2  60.7  55.9  60.1  63.5
    d = LF²−DT +10.9 +12.1 +19.5 +25.4 +21.9  +7.7 +12.0 +15.4
    source in-domain (A) 88–94, i.e. A→B is a real shift of 47 ± 5 points

Over the 8 seeds mean(d) = 15.6, sd(d) = 6.1 points. The test's seeds 0–4 give
mean 17.9, lower bound 11.9 > 0. With sd 6.1 and n = 5 the standard error is 2.7, so another
machine would have to lower the mean gain by about 11 points (4 standard errors) before the
bound reaches 0; thread counts and instruction sets move single runs by a few points
(docs/results.md). An earlier design (LF² after 96 fine-tuning steps) was NOT robust: its
gain fell with more epochs on all 4 seeds measured (seed 0: 54.4 after 16 steps, 47.6 after
96), hence 16 fine-tuning steps here. The schedule was read off the TEST split's monitoring
curve: acceptable for a regression test of the loop, never for a reported number.
Cost: about 70 s of one CPU core per seed (about 6 minutes in all).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

#: training seeds of the test (each: pre-training + LF² fine-tuning)
SEEDS = (0, 1, 2, 3, 4)
#: the test's own params: params/default.yaml of 2026-12-01, shorter (60 source, 16 fine-tuning
#: steps), frozen here so that a later redesign of the default does not move the measured margin
PARAMS = Path(__file__).with_name("adaptation_params.yaml")


def adaptation_runs(tmp: Path, seeds: tuple[int, ...], settings: list[str] | None = None) -> list[dict]:
    """Per seed: in-domain mAP on A, direct-transfer and LF² mAP on B (fractions)."""
    from lf2.config import load_params
    from lf2.data.manifest import load_manifest
    from lf2.data.prepare import prepare_dataset
    from lf2.train.checkpoint import load_model
    from lf2.train.finetune import run_finetune
    from lf2.train.monitor import evaluate_model
    from lf2.train.pretrain import run_pretrain
    from lf2.train.runtime import resolve_device

    base = load_params(PARAMS, settings)
    data = {}
    for name in ("synth_a", "synth_b"):
        opts = {k: v for k, v in base["datasets"][name].items() if k != "kind"}
        data[name] = prepare_dataset("synthetic", tmp / "data" / name, **opts).parent
    device = resolve_device("cpu")
    inp = base["input"]

    def score(ckpt: Path, dataset: str) -> float:
        model, _ = load_model(ckpt, device=device)
        return float(evaluate_model(model, load_manifest(data[dataset]), height=inp["height"],
                                    width=inp["width"], batch_size=base["evaluate"]["batch_size"],
                                    flip=base["model"]["flip_test"], device=device)["mAP"])

    out = []
    for seed in seeds:
        params = {**base, "seed": seed}
        t0 = time.perf_counter()
        run = tmp / f"seed{seed}"
        pre = run_pretrain(params, source=data["synth_a"], target=data["synth_b"], out=run / "pretrain" / "model.pt")
        m = params["rows"]["ablation_clusters"]
        ft = run_finetune(params, variant="lf2", clusters=m, init=pre, target=data["synth_b"],
                          out=run / "lf2" / "model.pt")
        rec = {"seed": seed, "source": score(pre, "synth_a"), "direct": score(pre, "synth_b"),
               "lf2": score(ft, "synth_b"), "seconds": time.perf_counter() - t0}
        curve = [(e["epoch"], round(e["eval"]["mAP"], 4)) for e in _epochs(ft.parent) if e.get("eval")]
        if curve:
            print(f"seed {seed}: LF2 test mAP per epoch (monitoring) {curve}", flush=True)
        print(f"seed {seed}: source in-domain {rec['source']:.4f}  direct {rec['direct']:.4f}  "
              f"LF2 {rec['lf2']:.4f}  ({rec['seconds']:.0f} s)", flush=True)
        out.append(rec)
    return out


def _epochs(run: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in (run / "epochs.jsonl").read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_lf2_beats_direct_transfer_on_average_over_seeds(tmp_path: Path) -> None:
    from lf2.report.stats import paired_difference

    runs = adaptation_runs(tmp_path, SEEDS)
    gain = paired_difference([r["lf2"] for r in runs], [r["direct"] for r in runs], one_sided=True)
    shift = paired_difference([r["source"] for r in runs], [r["direct"] for r in runs], one_sided=True)
    assert shift.ci_low > 0.1, f"the synthetic pair must be a real domain shift: {shift}"
    assert gain.ci_low > 0.0, f"LF² minus direct transfer over seeds {SEEDS}: {gain}"


if __name__ == "__main__":  # the spread study of the docstring
    import tempfile

    from lf2.report.stats import paired_difference

    with tempfile.TemporaryDirectory() as d:
        args = sys.argv[1:]
        seeds = tuple(int(a) for a in args if "=" not in a) or SEEDS
        runs = adaptation_runs(Path(d), seeds, [a for a in args if "=" in a])
    print(paired_difference([r["lf2"] for r in runs], [r["direct"] for r in runs], one_sided=True))
