"""STAGE_PARAMS is what each stage reads: a stage run on params holding only its tracked keys
(plus the keys that never change results) must not miss anything.

A key a stage reads but does not list would change results without making the stage stale
in Snakemake or DVC. Each stage here runs on a view of the params stripped to
``STAGE_PARAMS[stage] + UNTRACKED``, whose ``.get`` ignores defaults for the keys it dropped:
reading any other key raises ``KeyError`` naming it. (A key the params never held, an optional
one such as ``rows.seeds``, reads as usual.)
"""

from __future__ import annotations

import json

import pytest
import yaml

from lf2.workflow_dag import STAGE_PARAMS, UNTRACKED
from tests.conftest import tiny_params


class _Strict(dict):
    """A params mapping whose ``.get(key, default)`` ignores the default for a dropped key."""

    dropped: frozenset[str] = frozenset()

    def get(self, key, default=None):
        if key in self.dropped:
            raise KeyError(key)
        return super().get(key, default)


yaml.SafeDumper.add_representer(_Strict, yaml.representer.SafeRepresenter.represent_dict)


def stage_view(params: dict, stage: str, extra: list[str] | None = None) -> _Strict:
    """``params`` stripped to the keys ``stage`` tracks (and ``extra``, a job's own keys)."""
    keep = (*STAGE_PARAMS[stage], *UNTRACKED, *(extra or []))

    def covered(dotted: str) -> bool:
        return any(dotted == k or dotted.startswith(k + ".") for k in keep)

    def strip(node: dict, prefix: str) -> _Strict:
        out = _Strict()
        for key, value in node.items():
            dotted = prefix + key
            if covered(dotted):
                out[key] = value
            elif isinstance(value, dict) and any(k.startswith(dotted + ".") for k in keep):
                out[key] = strip(value, dotted + ".")
        out.dropped = frozenset(node) - frozenset(out)
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


@pytest.mark.slow
def test_table_reads_only_its_stage_params(tmp_path, monkeypatch) -> None:
    from lf2.cli import main
    from lf2.workflow_dag import used_datasets
    from tests.test_figures import _write_logs_and_metrics

    # one seed: the fake artifacts are the reference seed's; leak.csv reads the epochs
    params = tiny_params(tmp_path, finetune={"eval_every": 2}, rows={"seeds": [0]})
    _write_logs_and_metrics(params)
    kinds = [f"datasets.{ds}.kind" for ds in used_datasets(params)]  # the table job's extra keys
    view = stage_view(params, "table", kinds)
    monkeypatch.setattr("lf2.commands.table.load_with_roots", lambda args: view)
    out = tmp_path / "results" / "table2.csv"
    assert main(["table", "--params", "unused.yaml", "--out", str(out)]) == 0
    assert out.is_file() and len((out.parent / "leak.csv").read_text().splitlines()) > 1


@pytest.mark.slow
def test_figures_read_only_their_stage_params(tmp_path, monkeypatch) -> None:
    from pathlib import Path

    from lf2 import layout
    from lf2.cli import main
    from tests.test_figures import _tiny_checkpoints, _tiny_dataset, _write_logs_and_metrics

    params = tiny_params(tmp_path, rows={"clusters": [6], "ablation_clusters": 6, "seeds": [0]})
    params["directions"] = params["directions"][:1]  # one direction keeps the test short
    _write_logs_and_metrics(params)
    _tiny_dataset(Path(params["paths"]["data"]), params["directions"][0]["target"])
    _tiny_checkpoints(params)  # the fixtures get the full params, the stage the view
    view = stage_view(params, "figures")
    monkeypatch.setattr("lf2.commands.figures.load_with_roots", lambda args: view)
    out = tmp_path / "figs"
    assert main(["figures", "--params", "unused.yaml", "--out", str(out), "--num-images", "2",
                 "--tsne-ids", "4", "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(Path(f).name for f in layout.figure_paths(params))
