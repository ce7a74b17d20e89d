"""The supervised reference row: the fine-tuning loop on the target's true identities."""

from __future__ import annotations

import json
from pathlib import Path

from lf2.config import load_params
from lf2.rows import row_spec, rows_for, trained_rows
from lf2.workflow_dag import build_jobs
from tests.conftest import ROOT, tiny_params


def test_supervised_is_a_row_of_every_direction() -> None:
    params = load_params(ROOT / "params" / "default.yaml")
    assert rows_for(params)[-1] == "supervised" and "supervised" in trained_rows(params)
    spec = row_spec(params, "supervised")
    assert spec["variant"] == "supervised" and spec["display_name"] == "Supervised (target's true labels)"
    names = {j.name for j in build_jobs(params, "params/default.yaml")}
    for d in params["directions"]:
        assert any(n.startswith("finetune--") and d["name"] in n and "supervised" in n for n in names)
        assert any(n.startswith("evaluate--") and d["name"] in n and "supervised" in n for n in names)


def test_supervised_trains_on_true_identities(tmp_path: Path, blob_pair, pretrained_ckpt) -> None:
    from lf2.train.finetune import run_finetune

    out = run_finetune(tiny_params(tmp_path), variant="supervised", clusters=8, init=pretrained_ckpt,
                       target=blob_pair[1], out=tmp_path / "sup" / "model.pt")
    recs = [json.loads(line) for line in (out.parent / "epochs.jsonl").read_text().splitlines()]
    assert len(recs) == 2
    for rec in recs:
        (labels,) = rec["clusters"]
        # the blob target has 12 training identities: all of them, pure, whatever M_t says
        assert labels["num_clusters"] == 12 and labels["purity"] == 1.0 and labels["nmi"] > 0.999
