"""STAGE_PARAMS is what each stage reads: a stage run on params holding only its tracked keys
(plus the keys that never change results) must not miss anything.

A key a stage reads but does not list would change results without making the stage stale
in Snakemake or DVC. Each stage here runs on a view of the params stripped to
``STAGE_PARAMS[stage] + UNTRACKED``, whose ``.get`` ignores defaults: reading any other key
raises ``KeyError`` naming it.
"""

from __future__ import annotations

import json

import pytest
import yaml

from lf2.workflow_dag import STAGE_PARAMS, UNTRACKED
from tests.conftest import tiny_params


class _Strict(dict):
    """A params mapping whose ``.get(key, default)`` ignores the default."""

    def get(self, key, default=None):
        return self[key]


yaml.SafeDumper.add_representer(_Strict, yaml.representer.SafeRepresenter.represent_dict)


def stage_view(params: dict, stage: str) -> _Strict:
    keep = (*STAGE_PARAMS[stage], *UNTRACKED)

    def covered(dotted: str) -> bool:
        return any(dotted == k or dotted.startswith(k + ".") for k in keep)

    def strip(node: dict, prefix: str) -> _Strict:
        out = _Strict()
        for key, value in node.items():
            dotted = prefix + key
            if covered(dotted):
                out[key] = _Strict(value) if isinstance(value, dict) else value
            elif isinstance(value, dict) and any(k.startswith(dotted + ".") for k in keep):
                out[key] = strip(value, dotted + ".")
        return out

    return strip(params, "")


def test_the_view_drops_untracked_keys(tmp_path) -> None:
    view = stage_view(tiny_params(tmp_path), "pretrain")
    assert "finetune" not in view and "random_erasing" not in view["input"]
    with pytest.raises(KeyError):
        view.get("rows", {})


@pytest.mark.slow
def test_pretrain_reads_only_its_stage_params(tmp_path, blob_pair) -> None:
    from lf2.train.pretrain import run_pretrain

    params = stage_view(tiny_params(tmp_path, pretrain={"target_bn": True}), "pretrain")
    src, tgt = blob_pair
    assert run_pretrain(params, source=src, target=tgt, out=tmp_path / "p" / "model.pt").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["lf2", "no_fm"])
def test_finetune_reads_only_its_stage_params(tmp_path, blob_pair, pretrained_ckpt, variant) -> None:
    from lf2.train.finetune import run_finetune

    params = stage_view(tiny_params(tmp_path, finetune={"eval_every": 1}), "finetune")
    out = run_finetune(params, variant=variant, clusters=6, init=pretrained_ckpt, target=blob_pair[1],
                       out=tmp_path / "f" / "model.pt")
    recs = [json.loads(line) for line in (out.parent / "epochs.jsonl").read_text().splitlines()]
    assert recs[0]["eval"] is not None  # the monitoring evaluation ran


@pytest.mark.slow
def test_evaluate_reads_only_its_stage_params(tmp_path, blob_pair, pretrained_ckpt, monkeypatch) -> None:
    from lf2.cli import main

    view = stage_view(tiny_params(tmp_path), "evaluate")
    monkeypatch.setattr("lf2.config.load_params", lambda *a, **k: view)
    out = tmp_path / "m.json"
    assert main(["evaluate", "--params", "unused.yaml", "--checkpoint", str(pretrained_ckpt),
                 "--manifest", str(blob_pair[1]), "--out", str(out)]) == 0
    assert 0.0 <= json.loads(out.read_text())["mAP"] <= 1.0
