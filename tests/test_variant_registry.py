"""The variant registry is the one list of Table II row types: a variant registered here
(and nowhere else) gets a row, a fine-tuning job, a CLI choice, a table line and figure lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lf2 import layout
from lf2.cli import main
from lf2.config import row_spec, rows_for
from lf2.report.figures import draw_figures
from lf2.report.tables import write_tables
from lf2.train.variants import VARIANTS, Baseline, register, trained_variants, unregister
from lf2.workflow_dag import build_jobs
from tests.conftest import tiny_params
from tests.test_figures import _write_logs_and_metrics


class Dummy(Baseline):
    """A test-only row: the baseline's training with another name, between Baseline and w/o FM."""

    name = "dummy"
    label = "Dummy row"
    short_label = "Dummy"
    order = 15
    features = frozenset({"teacher_parts"})  # extracted, not clustered: exercises the request


@pytest.fixture()
def dummy():
    register(Dummy)
    yield Dummy
    unregister(Dummy.name)


def test_registry_order_and_rows(tmp_path: Path) -> None:
    params = tiny_params(tmp_path)
    assert list(VARIANTS) == ["direct", "baseline", "no_fm", "lf2", "no_fm_stripe", "lf2_fm_frozen", "supervised"]
    assert rows_for(params) == ["direct", "baseline", "no_fm", "lf2_m6", "lf2_m8", "no_fm_stripe", "lf2_fm_frozen",
                                "supervised"]
    assert row_spec(params, "lf2_m6") == {"variant": "lf2", "clusters": 6, "display_name": "LF² (M_t = 6)"}
    assert row_spec(params, "direct")["clusters"] is None
    with pytest.raises(ValueError, match="needs a name"):
        register(type("Nameless", (Baseline,), {"name": ""}))


def test_rows_variants_selects_and_is_checked(tmp_path: Path) -> None:
    from lf2.config import validate_params
    from lf2.errors import ParamsError

    params = tiny_params(tmp_path)
    params["rows"]["variants"] = ["direct", "lf2"]
    assert rows_for(validate_params(params)) == ["direct", "lf2_m6", "lf2_m8"]
    params["rows"]["variants"] = ["direct", "nope"]
    with pytest.raises(ParamsError, match="rows.variants: 'nope'"):
        validate_params(params)


@pytest.mark.slow
def test_a_registered_variant_runs_through_finetune_table_and_figures(
    dummy, tmp_path: Path, blob_pair, pretrained_ckpt
) -> None:
    import yaml

    from lf2.config import validate_params

    # params without an explicit rows.variants (as params/paper.yaml) run every variant the
    # registry marks as a default row: registering is the only edit. A file that lists its
    # variants (params/default.yaml adds the supplementary FM rows) names a new one there.
    params = tiny_params(tmp_path)
    params["rows"].pop("variants")
    params = validate_params(params)
    assert rows_for(params) == ["direct", "baseline", "dummy", "no_fm", "lf2_m6", "lf2_m8", "supervised"]
    assert "dummy" in trained_variants()
    # the DAG: a fine-tuning and an evaluation job per direction and seed
    jobs = build_jobs(params, "params/default.yaml")
    ft = [j for j in jobs if j.rule == "finetune" and j.wildcards["row"] == "dummy"]
    assert len(ft) == len(params["directions"]) and "--variant dummy --clusters 8" in ft[0].cmd
    # fake artifacts for every row, then a real fine-tuning run of the dummy row (CLI choice)
    _write_logs_and_metrics(params)
    out = layout.checkpoint_path(params, "A-to-B", "dummy", layout.reference_seed(params))
    pfile = tmp_path / "params.yaml"
    pfile.write_text(yaml.safe_dump(params, sort_keys=False))
    assert main(["finetune", "--params", str(pfile), "--variant", "dummy", "--clusters", "8",
                 "--init", str(pretrained_ckpt), "--target", str(blob_pair[1]), "--out", out]) == 0
    recs = [json.loads(line) for line in Path(layout.epochs_path(params, "A-to-B", "dummy", 0))
            .read_text().splitlines()]
    assert [r["row"] for r in recs] == ["dummy", "dummy"]
    assert [c["set"] for c in recs[0]["clusters"]] == ["global"]
    # the tables and the figures show it
    written = write_tables(params, layout.table_paths(params)[0])
    assert "Dummy row," in written[0].read_text(encoding="utf-8").splitlines()[3]
    paths = draw_figures(params, tmp_path / "figs", ["cmc", "training_curves"])
    assert len(paths) == 4
