"""Typed settings mirror the params schema: one field per key of each section."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from lf2.config import load_params, load_schema
from lf2.settings import SECTIONS, ClusteringSettings, finetune_settings, pretrain_settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_every_schema_key_has_a_field(section: str) -> None:
    props = load_schema()["properties"][section]["properties"]
    assert [f.name for f in dataclasses.fields(SECTIONS[section])] == list(props)
    if section == "finetune":
        nested = props["clustering"]["properties"]
        assert [f.name for f in dataclasses.fields(ClusteringSettings)] == list(nested)


def test_settings_hold_the_params_values_and_are_frozen() -> None:
    params = load_params(ROOT / "params" / "paper.yaml")
    ft, pt = finetune_settings(params), pretrain_settings(params)
    assert ft.lr == params["finetune"]["lr"] and ft.clustering.k1 == params["finetune"]["clustering"]["k1"]
    assert pt.milestones == tuple(params["pretrain"]["milestones"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        ft.lr = 1.0  # type: ignore[misc]
