"""lf2.config: loading, overrides, env expansion, schema and semantic errors, Table II rows."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from lf2.cli import main as cli_main
from lf2.config import (
    SCHEMA_PATH,
    apply_overrides,
    dump_params,
    expand_env,
    load_params,
    load_schema,
    row_spec,
    rows_for,
    validate_params,
)
from lf2.errors import ParamsError

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "params" / "default.yaml"
PARAMS_FILES = sorted(p.name for p in (ROOT / "params").glob("*.yaml"))  # every shipped file


def raw_default() -> dict:
    return yaml.safe_load(DEFAULT.read_text())


def write(tmp_path: Path, params: dict, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


# --------------------------------------------------------------------------- files


@pytest.mark.parametrize("name", PARAMS_FILES)
def test_shipped_params_files_are_valid(name):
    path = ROOT / "params" / name
    if not path.exists():
        pytest.skip(f"{name} not shipped")
    params = load_params(path)
    assert params["directions"]
    assert rows_for(params)[:3] == ["direct", "baseline", "no_fm"]


def test_schema_is_valid_draft_2020_12():
    schema = load_schema()
    assert schema["$schema"].endswith("2020-12/schema")
    jsonschema.Draft202012Validator.check_schema(schema)


def test_snakemake_validate_accepts_default_and_rejects_bad(tmp_path):
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    validate(raw_default(), str(SCHEMA_PATH))
    bad = raw_default()
    bad["finetune"]["sampling"] = "triple"
    with pytest.raises(WorkflowError, match="sampling"):
        validate(bad, str(SCHEMA_PATH))


def test_defaults_of_optional_keys_are_filled():
    params = load_params(DEFAULT)
    # local_rules is written in default.yaml; the other workflow keys are schema defaults
    assert params["workflow"] == {
        "local_rules": ["prepare", "table", "figures"], "gpu_slot": False, "gpus": 0
    }
    assert params["threads"] == 1  # pinned: results must not depend on snakemake -c


def test_paper_settings():
    p = load_params(ROOT / "params" / "paper.yaml")
    assert (p["input"]["height"], p["input"]["width"], p["input"]["pad"]) == (256, 128, 10)
    assert p["model"]["arch"] == "resnet50" and p["model"]["pretrained"] is True
    assert p["model"]["fm_reduction"] == 4 and p["model"]["num_parts"] == 2
    assert (p["pretrain"]["epochs"], p["pretrain"]["iters_per_epoch"]) == (80, 200)
    assert p["pretrain"]["milestones"] == [40, 70] and p["pretrain"]["lr"] == 3.5e-4
    assert (p["finetune"]["epochs"], p["finetune"]["iters_per_epoch"]) == (80, 400)
    assert p["pretrain"]["batch_p"] * p["pretrain"]["batch_k"] == 64
    assert p["finetune"]["batch_p"] * p["finetune"]["batch_k"] == 64
    f = p["finetune"]
    assert (f["alpha"], f["lambda_tri"], f["gamma"], f["ema_omega"]) == (1.0, 0.5, 0.5, 0.999)
    assert p["input"]["random_erasing"] == 0.5
    assert p["rows"] == {"clusters": [500, 700, 900], "ablation_clusters": 700}
    assert [d["name"] for d in p["directions"]] == ["D-to-M", "M-to-D"]


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ParamsError, match="does not exist"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: [1, 2\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ParamsError, match="mapping"):
        load_params(scalar)


def test_dump_params_round_trip(tmp_path):
    params = load_params(DEFAULT)
    out = tmp_path / "sub" / "params.yaml"
    dump_params(params, out)
    assert load_params(out) == params
    assert not [p for p in out.parent.iterdir() if p.name != "params.yaml"]  # no temp left


# --------------------------------------------------------------------------- schema errors


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("finetune.sampling", "triple", ["shared", "per_label"]),
        ("finetune.global_triplet", "semi", ["hard", "softmax"]),
        ("finetune.clustering.method", "spectral", ["kmeans", "dbscan"]),
        ("model.pooling", "max", ["avg", "avg+max"]),
        ("model.fm_mode", "cbam", ["paper", "released", "eq5_line2"]),
        ("model.test_feature", "global", ["pooled", "heads"]),
        ("model.arch", "vit", ["resnet50"]),
        ("precision", "fp16", ["fp32", "bf16"]),
        ("input.cache", "disk", ["memory", "loader"]),
        ("datasets.synth_a.kind", "imagenet", ["synthetic", "market1501", "dukemtmc"]),
    ],
)
def test_enum_error_names_key_and_allowed_values(tmp_path, key, value, allowed):
    with pytest.raises(ParamsError) as exc:
        load_params(DEFAULT, [f"{key}={value}"])
    msg = str(exc.value)
    assert key in msg and repr(value) in msg
    for a in allowed:
        assert a in msg
    assert str(DEFAULT) in msg


def test_bad_value_in_file_names_key(tmp_path):
    params = raw_default()
    params["finetune"]["sampling"] = "triple"
    with pytest.raises(
        ParamsError, match=r"finetune\.sampling: 'triple' is not allowed.*per_label"
    ):
        load_params(write(tmp_path, params))


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("device=gpu", "device: 'gpu' is not valid; expected auto | cpu | cuda | cuda:N"),
        ("pretrain.epochs=abc", "pretrain.epochs: expected integer, got string 'abc'"),
        ("pretrain.epochs=0", "pretrain.epochs: 0 is less than the minimum of 1"),
        ("finetune.ema_omega=1.0", "finetune.ema_omega"),
        ("input.random_erasing=1.5", "input.random_erasing"),
        ("model.pretrained=3", "model.pretrained: 3 is not valid"),
        ("rows.clusters=[1, 8]", "rows.clusters[0]: 1 is less than the minimum of 2"),
        ("rows.clusters=[8, 8]", "rows.clusters"),
        ("directions.0.name='A/B'", "directions[0].name: 'A/B' is not valid"),
        ("finetune.foo=1", "finetune.foo: unknown key"),
        ("bogus=1", "bogus: unknown key"),
        ("datasets.synth_a.extra=1", "datasets.synth_a.extra: unknown key"),
        ("datasets.real={kind: market1501}", "datasets.real.root: required key is missing"),
        ("pretrain.lr='abc'", "pretrain.lr: expected number"),
    ],
)
def test_schema_errors_name_the_key(override, fragment):
    with pytest.raises(ParamsError) as exc:
        load_params(DEFAULT, [override])
    assert fragment in str(exc.value)


def test_missing_required_key_is_named(tmp_path):
    params = raw_default()
    del params["finetune"]["clustering"]["k1"]
    with pytest.raises(ParamsError, match=r"finetune\.clustering\.k1: required key is missing"):
        load_params(write(tmp_path, params))


def test_several_errors_are_all_reported(tmp_path):
    params = raw_default()
    params["device"] = "tpu"
    params["finetune"]["sampling"] = "x"
    with pytest.raises(ParamsError) as exc:
        load_params(write(tmp_path, params))
    assert "device" in str(exc.value) and "finetune.sampling" in str(exc.value)


def test_real_dataset_entries(tmp_path):
    params = raw_default()
    params["datasets"]["cu"] = {"kind": "cuhk03", "root": "x", "cuhk03_type": "labeled"}
    params["datasets"]["mk"] = {"kind": "market1501", "root": "y"}
    params["directions"].append({"name": "CU-to-MK", "source": "cu", "target": "mk"})
    out = load_params(write(tmp_path, params))
    assert out["datasets"]["cu"]["cuhk03_type"] == "labeled"
    params["datasets"]["mk"]["cuhk03_type"] = "labeled"
    with pytest.raises(ParamsError, match=r"datasets\.mk\.cuhk03_type"):
        load_params(write(tmp_path, params))
    params["datasets"]["mk"] = {"kind": "market1501", "root": "y", "train_ids": 3}
    with pytest.raises(ParamsError, match=r"datasets\.mk\.train_ids: unknown key"):
        load_params(write(tmp_path, params))


# --------------------------------------------------------------------------- semantics


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["directions.0.source=synth_c"], "directions[0].source: dataset 'synth_c' is not defined"),
        (["directions.1.target=synth_b"], "directions[1]: source and target are both 'synth_b'"),
        (["directions.1.name=A-to-B"], "directions[1].name: direction 'A-to-B' appears twice"),
        (
            ["pretrain.milestones=[10, 6]"],
            "pretrain.milestones: [10, 6] must be strictly increasing",
        ),
        (["pretrain.milestones=[6, 6]"], "strictly increasing"),
        (["input.height=16", "input.width=8"], "input.height"),
        (["rows.clusters=[32, 1000]"], "rows: M_t = [1000] exceed the ~384 training images"),
        (["evaluate.k2=30"], "evaluate.k2"),
    ],
)
def test_semantic_errors(overrides, fragment):
    with pytest.raises(ParamsError) as exc:
        load_params(DEFAULT, overrides)
    assert fragment in str(exc.value)


def test_stride_two_needs_taller_input():
    assert load_params(DEFAULT, ["input.height=32", "input.width=16"])  # 2 rows at stride 16
    with pytest.raises(ParamsError, match="too short"):
        load_params(DEFAULT, ["input.height=32", "input.width=16", "model.last_stride=2"])


# --------------------------------------------------------------------------- overrides


def test_overrides_parse_values_as_yaml():
    p = load_params(
        DEFAULT,
        [
            "finetune.epochs=3",
            "rows.clusters=[10, 20]",
            "rows.variants=[direct, baseline, no_fm, lf2]",  # Table II rows only (the default adds the FM ablation)
            "model.flip_test=false",
            "pretrain.lr=1e-4",
            "model.pretrained=/weights/r18.pth",
            "directions.0.target=synth_a",
            "directions.0.source=synth_b",
            "directions.0.validation=synth_a_val",
        ],
    )
    assert p["finetune"]["epochs"] == 3 and isinstance(p["finetune"]["epochs"], int)
    assert p["rows"]["clusters"] == [10, 20]
    assert p["model"]["flip_test"] is False
    assert p["pretrain"]["lr"] == pytest.approx(1e-4) and isinstance(p["pretrain"]["lr"], float)
    assert p["model"]["pretrained"] == "/weights/r18.pth"
    assert p["directions"][0]["source"] == "synth_b"
    assert rows_for(p) == ["direct", "baseline", "no_fm", "lf2_m10", "lf2_m20"]


def test_overrides_do_not_touch_the_input():
    raw = raw_default()
    before = copy.deepcopy(raw)
    out = apply_overrides(raw, ["finetune.epochs=1", "workflow.gpu_slot=true"])
    assert raw == before
    assert out["finetune"]["epochs"] == 1
    assert out["workflow"] == {**before["workflow"], "gpu_slot": True}  # merged into the file's


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("finetune.epochs", "expected KEY.PATH=VALUE"),
        ("=3", "expected KEY.PATH=VALUE"),
        ("seed.x=1", "seed is a integer, not a mapping or list"),
        ("directions.7.name=x", "directions.7 is not an index of a list of 2"),
        ("finetune.epochs=[1", "not valid YAML"),
    ],
)
def test_bad_overrides(override, fragment):
    with pytest.raises(ParamsError) as exc:
        load_params(DEFAULT, [override])
    assert fragment in str(exc.value)


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=-5, max_value=500))
def test_epoch_override_accepted_iff_positive(n):
    if n >= 1:
        assert load_params(DEFAULT, [f"finetune.epochs={n}"])["finetune"]["epochs"] == n
    else:
        with pytest.raises(ParamsError, match=r"finetune\.epochs"):
            load_params(DEFAULT, [f"finetune.epochs={n}"])


# --------------------------------------------------------------------------- env expansion


def test_env_expansion(monkeypatch):
    monkeypatch.setenv("LF2_TEST_ROOT", "/mnt/reid")
    monkeypatch.delenv("LF2_TEST_UNSET", raising=False)
    monkeypatch.setenv("LF2_TEST_EMPTY", "")
    obj = {
        "a": "${LF2_TEST_ROOT}/Market",
        "b": "${LF2_TEST_UNSET:-datasets}/Duke",
        "c": ["x", "${LF2_TEST_EMPTY:-fallback}"],
        "d": 3,
        "e": "$HOME stays",
        "f": "${LF2_TEST_ROOT}-${LF2_TEST_UNSET:-}",
    }
    assert expand_env(obj) == {
        "a": "/mnt/reid/Market",
        "b": "datasets/Duke",
        "c": ["x", "fallback"],
        "d": 3,
        "e": "$HOME stays",
        "f": "/mnt/reid-",
    }


def test_env_unset_without_default_names_key(monkeypatch):
    monkeypatch.delenv("LF2_TEST_UNSET", raising=False)
    with pytest.raises(ParamsError) as exc:
        expand_env({"datasets": {"m": {"root": "${LF2_TEST_UNSET}/x"}}})
    msg = str(exc.value)
    assert "datasets.m.root" in msg and "LF2_TEST_UNSET" in msg


def test_env_expansion_in_params_file(tmp_path, monkeypatch):
    monkeypatch.setenv("LF2_DATA_ROOT", str(tmp_path / "reid"))
    p = load_params(ROOT / "params" / "paper.yaml")
    assert p["datasets"]["market"]["root"] == f"{tmp_path}/reid/Market-1501-v15.09.15"
    monkeypatch.delenv("LF2_DATA_ROOT")
    p = load_params(ROOT / "params" / "paper.yaml")
    assert p["datasets"]["duke"]["root"] == "datasets/DukeMTMC-reID"
    # expansion happens before validation: an expanded value is checked too
    monkeypatch.setenv("LF2_TEST_DEVICE", "tpu")
    with pytest.raises(ParamsError, match="device: 'tpu'"):
        load_params(DEFAULT, ["device=${LF2_TEST_DEVICE}"])


def test_validate_params_does_not_modify_input():
    raw = raw_default()
    before = copy.deepcopy(raw)
    validate_params(raw)
    assert raw == before


# --------------------------------------------------------------------------- rows


def test_rows_order_and_display_names():
    p = load_params(DEFAULT, ["rows.clusters=[50, 70, 90]", "rows.ablation_clusters=70", "rows.variants=[direct, baseline, no_fm, lf2]"])
    assert rows_for(p) == ["direct", "baseline", "no_fm", "lf2_m50", "lf2_m70", "lf2_m90"]
    specs = [row_spec(p, r) for r in rows_for(p)]
    assert [s["display_name"] for s in specs] == [
        "Direct transfer",
        "Baseline (only L_ReID^t)",
        "LF² w/o FM",
        "LF² (M_t = 50)",
        "LF² (M_t = 70)",
        "LF² (M_t = 90)",
    ]
    assert [s["variant"] for s in specs] == ["direct", "baseline", "no_fm", "lf2", "lf2", "lf2"]
    assert [s["clusters"] for s in specs] == [None, 70, 70, 50, 70, 90]
    paper = load_params(ROOT / "params" / "paper.yaml")
    assert row_spec(paper, "lf2_m700")["display_name"] == "LF² (M_t = 700)"


def test_rows_keep_the_configured_cluster_order():
    p = load_params(DEFAULT, ["rows.clusters=[64, 32]"])
    assert rows_for(p)[3:] == ["lf2_m64", "lf2_m32", "no_fm_stripe", "lf2_fm_frozen", "supervised"]


@pytest.mark.parametrize("row", ["pretrain", "lf2_m999", "lf2", "LF2_m32", "baseline2"])
def test_unknown_row_is_an_error(row):
    p = load_params(DEFAULT)
    with pytest.raises(ParamsError, match="not a Table II row"):
        row_spec(p, row)


# --------------------------------------------------------------------------- CLI


def test_cli_params_prints_resolved_and_gets_keys(capsys, monkeypatch):
    monkeypatch.setenv("LF2_DATA_ROOT", "/data/reid")
    assert cli_main(["params", "--params", str(ROOT / "params" / "paper.yaml")]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["datasets"]["market"]["root"] == "/data/reid/Market-1501-v15.09.15"
    assert cli_main(["params", "--params", str(DEFAULT), "--get", "finetune.sampling"]) == 0
    assert capsys.readouterr().out == "shared\n"
    assert (
        cli_main(
            [
                "params",
                "--params",
                str(DEFAULT),
                "--set",
                "finetune.epochs=2",
                "--get",
                "finetune.epochs",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out == "2\n"
    assert cli_main(["params", "--params", str(DEFAULT), "--rows"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "direct\tdirect\t\tDirect transfer"
    assert lines[3] == "lf2_m32\tlf2\t32\tLF² (M_t = 32)"


def test_cli_params_bad_value_exits_1(capsys):
    code = cli_main(["params", "--params", str(DEFAULT), "--set", "finetune.sampling=triple"])
    assert code == 1
    err = capsys.readouterr().err
    assert "finetune.sampling" in err and "per_label" in err
