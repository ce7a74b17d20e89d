"""directions[].validation: a tuning target with the target's domain and other identities."""

from __future__ import annotations

import copy

import pytest

from lf2.config import load_params, validate_params
from lf2.errors import ParamsError
from lf2.workflow_dag import used_datasets
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def default() -> dict:
    return load_params(ROOT / "params" / "default.yaml")


def _with(params: dict, direction: int, **changes) -> dict:
    p = copy.deepcopy(params)
    p["directions"][direction].update(changes)
    return p


def test_default_names_a_validation_target_per_direction(default: dict) -> None:
    for d in default["directions"]:
        val, tgt = default["datasets"][d["validation"]], default["datasets"][d["target"]]
        assert val["domain"] == tgt["domain"] and val["seed"] != tgt["seed"]


def test_validation_datasets_are_not_prepared_by_the_default_suite(default: dict) -> None:
    used = used_datasets(default)
    assert not {d["validation"] for d in default["directions"]} & set(used)


def test_validation_equal_to_target_is_refused(default: dict) -> None:
    with pytest.raises(ParamsError, match=r"directions\[0\]\.validation: 'synth_b' is the target"):
        validate_params(_with(default, 0, validation="synth_b"))


def test_validation_with_the_targets_identity_seed_is_refused(default: dict) -> None:
    p = copy.deepcopy(default)
    p["datasets"]["synth_b_val"]["seed"] = p["datasets"]["synth_b"]["seed"]
    with pytest.raises(ParamsError, match=r"directions\[0\]\.validation: 'synth_b_val' has seed 22"):
        validate_params(p)


def test_validation_of_another_domain_or_undefined_is_refused(default: dict) -> None:
    with pytest.raises(ParamsError, match=r"directions\[1\]\.validation: 'synth_b_val' must be synthetic domain 'a'"):
        validate_params(_with(default, 1, validation="synth_b_val"))
    with pytest.raises(ParamsError, match=r"directions\[0\]\.validation: dataset 'nope' is not defined"):
        validate_params(_with(default, 0, validation="nope"))


def test_validation_is_optional(default: dict) -> None:
    p = copy.deepcopy(default)
    for d in p["directions"]:
        del d["validation"]
    assert "validation" not in validate_params(p)["directions"][0]
