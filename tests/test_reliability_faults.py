"""Faults a user can cause are named: file, key or variable, and what to do."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_params

from lf2.errors import DatasetError, ParamsError, TrainingError

ROOT = Path(__file__).resolve().parents[1]


def test_market_name_with_a_malformed_identity_is_named(tmp_path):
    from test_datasets import market_tree

    from lf2.data.datasets import load_dataset

    d = market_tree(tmp_path)
    (d / "bounding_box_train" / "00-1_c1s1_000001_00.jpg").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"00-1_c1s1_000001_00\.jpg: cannot parse .*pattern"):
        load_dataset("market1501", d)


def test_unset_data_root_is_named_when_the_dataset_is_missing(tmp_path, monkeypatch, capsys):
    from lf2.cli import main

    monkeypatch.delenv("LF2_DATA_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./datasets here
    rc = main(["prepare", "market1501", "--params", str(ROOT / "params" / "paper.yaml"), "--dataset", "market",
               "--out", str(tmp_path / "market")])
    err = capsys.readouterr().err
    assert rc == 1
    assert "datasets.market.root" in err and "LF2_DATA_ROOT is not set" in err and "export LF2_DATA_ROOT" in err
    assert not (tmp_path / "market").exists()


def test_batch_p_above_the_clusters_fails_at_params_load():
    from lf2.config import load_params

    with pytest.raises(ParamsError, match=r"finetune\.batch_p: 7 identities per batch.*M_t = 6"):
        load_params(ROOT / "params" / "smoke.yaml", ["finetune.batch_p=7"])


def test_batch_p_above_the_pseudo_identities_is_named_at_clustering():
    from lf2.train.sampling import make_sampling

    labels = np.array([0, 0, 1, 1, 2, 2, -1, -1])  # DBSCAN-like: 3 clusters and outliers
    with pytest.raises(ParamsError, match=r"finetune\.batch_p: 4 identities .* only 3 pseudo identities"):
        make_sampling("shared", [labels], 4, 2, 3, 0)


def test_diverging_pretraining_stops_naming_epoch_and_iteration(tmp_path, blob_pair):
    from lf2.train.pretrain import run_pretrain

    params = tiny_params(tmp_path, pretrain={"lr": 1e6, "epochs": 1, "batch_k": 2})
    out = tmp_path / "run" / "model.pt"
    with pytest.raises(TrainingError, match=r"loss above .*\(diverging\).* at epoch 1, iteration \d"):
        run_pretrain(params, source=blob_pair[0], target=None, out=out)
    assert not out.exists()


def test_divergence_limit_scales_with_the_classes():
    from lf2.train.common import divergence_limit

    assert divergence_limit(751) == pytest.approx(100 * np.log(751))
    assert divergence_limit(2) == 100.0  # at least 100 x 1


def test_cli_names_a_refused_folder(monkeypatch, capsys):
    from lf2.cli import main
    from lf2.commands import params as params_cmd

    def refused(args):
        raise PermissionError(errno.EACCES, "Permission denied", "/srv/runs/A-to-B")

    monkeypatch.setattr(params_cmd, "run", refused)
    assert main(["params", "--params", str(ROOT / "params" / "smoke.yaml")]) == 1
    err = capsys.readouterr().err
    assert "/srv/runs/A-to-B: permission denied" in err and "Traceback" not in err


@pytest.mark.slow
def test_gpu_slot_in_a_checkout_path_with_spaces(tmp_path):
    from test_workflow import env_with, fake_bin, snakemake, workcopy

    base = tmp_path / "my checkout"
    base.mkdir()
    work = workcopy(base)
    env = env_with(fake_bin(tmp_path))
    env["LF2_GPU_LOCK_DIR"] = str(tmp_path / "locks")
    res = snakemake(work, "-c1", "-p", "results/metrics/A-to-B/direct/seed0.json",
                    "--config", "workflow={gpu_slot: true, gpus: 1}", env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "'" + str(work / "workflow" / "scripts" / "gpu_slot.py") + "'" in res.stdout + res.stderr
    assert (work / "results" / "metrics" / "A-to-B" / "direct" / "seed0.json").is_file()
