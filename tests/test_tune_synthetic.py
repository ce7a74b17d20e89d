"""benchmarks/tune_synthetic.py: validation targets and the candidate table (no training)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from lf2 import layout
from lf2.config import apply_overrides, load_params, validate_params
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def tune():
    spec = importlib.util.spec_from_file_location("tune_synthetic", ROOT / "benchmarks" / "tune_synthetic.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_validation_target_follows_the_candidate_sizes_with_its_own_seed(tune) -> None:
    params = validate_params(apply_overrides(load_params(ROOT / "params" / "default.yaml"),
                                             tune.CANDIDATES["c32"]))
    for d in params["directions"]:
        spec = tune.validation_spec(params, d)
        target = params["datasets"][d["target"]]
        assert spec["seed"] == params["datasets"][d["validation"]]["seed"] != target["seed"]
        assert {k: v for k, v in spec.items() if k != "seed"} == {k: v for k, v in target.items() if k != "seed"}
        assert spec["height"] == 32 and spec["test_ids"] == 150


def test_every_candidate_is_valid_params(tune) -> None:
    base = load_params(ROOT / "params" / "default.yaml")
    for name, overrides in tune.CANDIDATES.items():
        validate_params(apply_overrides(base, overrides), f"candidate {name}")


def test_summary_gives_intervals_only_with_two_seeds_or_more(tune, tmp_path) -> None:
    log = tmp_path / "tune.jsonl"
    rows = {"direct": 40.0, "baseline": 45.0, "lf2": 46.0, "supervised": 60.0}
    lines = [{"candidate": "c", "direction": "A-to-B", "row": r, "seed": s, "mAP": v + s}
             for s in (0, 1, 2) for r, v in rows.items()]
    lines += [{"candidate": "one", "direction": "A-to-B", "row": r, "seed": 0, "mAP": v} for r, v in rows.items()]
    log.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    table = tune.summary(log).splitlines()
    c, one = next(x for x in table if x.startswith("| c |")), next(x for x in table if x.startswith("| one |"))
    assert "| 0,1,2 | 41.0 ± 1.0 [38.5, 43.5] | 46.0 ± 1.0" in c
    assert "| 5.0 ± 0.0 [5.0, 5.0] |" in c          # Baseline − Direct is 5 for every seed
    assert "| 25.0 ± 0.0 [25.0, 25.0] |" in c       # 5 of the 20 points of the gap
    assert "n = 1, no interval" in one and "±" not in one


def test_paired_summary_pairs_two_candidates_over_their_common_seeds(tune, tmp_path) -> None:
    log = tmp_path / "tune.jsonl"
    lines = []
    for s, gap in ((0, 1.0), (1, 2.0), (2, 3.0)):  # b is a plus 1, 2, 3 points: mean 2, std 1
        for cand, shift in (("a", 0.0), ("b", gap)):
            lines.append({"candidate": cand, "direction": "A-to-B", "row": "baseline", "seed": s,
                          "mAP": 40.0 + shift, "rank1": 50.0, "train_s": 10.0 if cand == "a" else 20.0})
    lines.append({"candidate": "a", "direction": "A-to-B", "row": "baseline", "seed": 3, "mAP": 0.0,
                  "rank1": 0.0, "train_s": 1.0})  # no partner in b: left out
    log.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    table = tune.paired_summary(log, "a", "b").splitlines()
    m = next(x for x in table if "| mAP |" in x)
    r1 = next(x for x in table if "| Rank-1 |" in x)
    # -2 ± t(0.975, 2) * 1 / sqrt(3) = -2 ± 2.48
    assert "| -2.0 [-4.5, +0.5] (n = 3) | not distinguishable | 10 / 20 |" in m
    assert "+0.0 [+0.0, +0.0] (n = 3)" in r1


def test_unknown_candidate_is_refused(tune, capsys) -> None:
    with pytest.raises(SystemExit):
        tune.main(["--candidates", "nope", "--work", "/nonexistent"])
    assert "unknown candidate" in capsys.readouterr().err


def test_default_study_summary_pairs_rows_over_seeds(tmp_path) -> None:
    spec = importlib.util.spec_from_file_location("default_study", ROOT / "benchmarks" / "default_study.py")
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    log = tmp_path / "study.jsonl"
    base = {"direct": 40.0, "baseline": 44.0, "no_fm": 44.0, "lf2": 44.0, "supervised": 60.0}
    noise = {0: 0.0, 1: 3.0, 2: -3.0}  # shared by every row of a seed: cancels in the paired differences
    lines = [{"direction": "A-to-B", "row": r, "seed": s, "mAP": v + noise[s] + (s == 2) * (r == "lf2"),
              "rank1": v, "num_query": 100} for s in (0, 1, 2) for r, v in base.items()]
    log.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    text = study.summary(log)
    assert "| baseline − direct | 3 | +4.0 | [+4.0, +4.0] | 0.0 | higher |" in text
    assert "| lf2 − no_fm | 3 | +0.3 | [-1.1, +1.8] | 1.4 | not distinguishable |" in text
    assert "| baseline | 3 | 44.0 ± 3.0" in text and "| 20.0 ± 0.0 [20.0, 20.0] |" in text


def test_validation_rows_run_on_the_validation_target_and_share_the_pretraining(tune, tmp_path) -> None:
    import shlex

    params = load_params(ROOT / "params" / "default.yaml")
    d = params["directions"][0]
    ws = tune.study.Workspace(tmp_path)
    val, test = (ws.plan(p, d["name"], "supervised", 0) for p in (tune.validation_params(params, d), params))
    evaluate = val.steps[-1].args
    args = shlex.split(evaluate)
    ran = load_params(args[args.index("--params") + 1])
    assert f"--manifest {layout.data_dir(ran, d['validation'])} " in evaluate
    assert ran["datasets"][d["validation"]] == tune.validation_spec(params, d)
    assert "--variant supervised " in val.steps[-2].args  # the DAG's supervised row, not a pre-training
    assert not params["pretrain"]["target_bn"] and val.steps[3].src == test.steps[3].src
    assert val.metrics != test.metrics


def test_the_current_default_is_the_chosen_candidate(tune) -> None:
    # docs/tuning.md: the default is candidate c32_auto (c32_fused, precision: auto); each candidate spells out every key
    # it sets, so applying it to params/default.yaml must change nothing
    base = load_params(ROOT / "params" / "default.yaml")
    assert validate_params(apply_overrides(base, tune.CANDIDATES[tune.DEFAULT_CANDIDATE])) == validate_params(base)
