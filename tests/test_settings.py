"""Typed settings mirror the params schema: one field per key of each section."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from lf2.config import load_params, load_schema
from lf2.settings import (
    SECTIONS,
    ClusteringSettings,
    InputSettings,
    build,
    evaluate_settings,
    finetune_settings,
    input_settings,
    model_settings,
    pretrain_settings,
    schema_key,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_every_schema_key_has_a_field(section: str) -> None:
    props = load_schema()["properties"][section]["properties"]
    assert [schema_key(f) for f in dataclasses.fields(SECTIONS[section])] == list(props)
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


def test_keys_only_the_schema_defaults_fill_reach_the_settings() -> None:
    """``model.expert`` and the ``evaluate`` keys have schema defaults: a params file may omit
    them, and the settings still hold them (``lambda`` as ``lambda_``)."""
    params = load_params(ROOT / "params" / "smoke.yaml")
    ev, m, inp = evaluate_settings(params), model_settings(params), input_settings(params)
    assert ev.lambda_ == params["evaluate"]["lambda"] and ev.batch_size == params["evaluate"]["batch_size"]
    assert m.expert == params["model"]["expert"] and m.num_parts == params["model"]["num_parts"]
    assert (inp.height, inp.width) == (params["input"]["height"], params["input"]["width"])


def test_a_key_the_section_lacks_fails_when_read_not_when_built() -> None:
    """A stage's params stripped to its tracked keys (tests/test_stage_params.py) build
    settings; reading an untracked field is the KeyError that names it."""
    section = dict(load_params(ROOT / "params" / "smoke.yaml")["input"])
    del section["random_erasing"]
    inp = build(InputSettings, section, "input")
    assert (inp.height, inp.pad) == (section["height"], section["pad"])
    with pytest.raises(KeyError, match="input.random_erasing"):
        inp.random_erasing  # noqa: B018
    with pytest.raises(AttributeError):
        inp.random_erasin  # type: ignore[attr-defined]  # noqa: B018
