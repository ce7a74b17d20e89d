"""End to end on the embedded synthetic pair: fine-tuning must beat direct transfer.

Uses the default params (the suite users run), direction A-to-B, the full LF² row at
M_t = rows.ablation_clusters. CPU training is seeded and deterministic, so this is a
reproducible comparison, not a flaky one; it takes a few minutes on 2 cores.
"""

from __future__ import annotations

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_lf2_beats_direct_transfer_on_synthetic_target(tmp_path):
    from lf2.config import load_params
    from lf2.data.manifest import load_manifest
    from lf2.data.prepare import prepare_dataset
    from lf2.train.checkpoint import load_model
    from lf2.train.finetune import run_finetune
    from lf2.train.monitor import evaluate_model
    from lf2.train.pretrain import run_pretrain
    from lf2.train.runtime import resolve_device

    params = load_params(ROOT / "params" / "default.yaml")
    data = {}
    for name in ("synth_a", "synth_b"):
        opts = {k: v for k, v in params["datasets"][name].items() if k != "kind"}
        data[name] = prepare_dataset("synthetic", tmp_path / name, **opts).parent
    pre = run_pretrain(params, source=data["synth_a"], target=data["synth_b"], out=tmp_path / "pre" / "model.pt")
    m = params["rows"]["ablation_clusters"]
    ft = run_finetune(params, variant="lf2", clusters=m, init=pre, target=data["synth_b"],
                      out=tmp_path / "lf2" / "model.pt")
    target = load_manifest(data["synth_b"])
    inp, device = params["input"], resolve_device("cpu")

    def score(ckpt):
        model, _ = load_model(ckpt, device=device)
        return evaluate_model(model, target, height=inp["height"], width=inp["width"], batch_size=128,
                              flip=params["model"]["flip_test"], device=device)["mAP"]

    direct, adapted = score(pre), score(ft)
    source_model_on_source = evaluate_model(load_model(pre, device=device)[0], load_manifest(data["synth_a"]),
                                            height=inp["height"], width=inp["width"], batch_size=128,
                                            flip=params["model"]["flip_test"], device=device)["mAP"]
    print(f"source in-domain {source_model_on_source:.3f}, direct transfer {direct:.3f}, LF2 {adapted:.3f}")
    assert source_model_on_source > direct + 0.2, "the synthetic pair must be a real domain shift"
    assert adapted > direct + 0.01, f"LF2 ({adapted:.3f}) did not beat direct transfer ({direct:.3f})"
