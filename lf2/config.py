"""Load, validate and describe a params file.

``load_params`` is the one way every stage (and the Snakefile) reads params:

1. read the YAML file (a mapping at the top level), merged over the file it ``extends``
   (:mod:`lf2.params_chain`: a preset holds only its differences);
2. apply ``key.path=value`` overrides (the value is parsed as YAML: ``3`` is an int,
   ``[1, 2]`` a list, ``true`` a bool);
3. expand ``${VAR}`` and ``${VAR:-default}`` environment variables in string values;
4. validate against ``lf2/schema/params.schema.json`` (JSON Schema draft 2020-12) and
   fill the defaults of optional keys;
5. run the semantic checks the schema cannot express (:mod:`lf2.params_checks`:
   directions name existing datasets, milestones increase, the feature map is tall enough
   for the parts, ...).

Every failure raises :class:`~lf2.errors.ParamsError` naming the file and the key path
(``finetune.sampling``) and saying what is allowed.

The Table II rows of a params file are ``rows_for(params)``; ``row_spec`` says what a row
trains and how the tables name it; both derive from the variant registry
(:data:`lf2.train.variants.VARIANTS`).
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

from lf2.errors import ParamsError
from lf2.io import atomic_write_text
from lf2.layout import PRETRAIN_ROW  # noqa: F401  (re-exported: the row name of pre-training)
from lf2.params_checks import semantic_problems
from lf2.rows import (  # noqa: F401  (re-exported: the Table II rows of a params file)
    figure_rows,
    reference_row,
    row_spec,
    row_variants,
    rows_for,
    trained_rows,
)

SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "params.schema.json"


_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_FLOATISH_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)$")


# --------------------------------------------------------------------------- loading


def load_params(path: str | os.PathLike[str], overrides: list[str] | None = None) -> dict[str, Any]:
    """Read (with the files it ``extends``), override, expand, validate and check a params
    file; return the resolved dict."""
    from lf2.params_chain import read_merged

    raw = read_merged(path)
    params = apply_overrides(raw, overrides or [], source=str(path))
    return validate_params(params, source=str(path))


def validate_params(params: dict[str, Any], source: str = "<params>") -> dict[str, Any]:
    """Expand environment variables, validate, fill defaults, check semantics.

    Returns a new dict; ``params`` is not modified. ``source`` names the file in errors.
    """
    try:
        params = expand_env(copy.deepcopy(params))
    except ParamsError as exc:
        raise ParamsError(f"{source}: {exc}") from None
    schema_errors = schema_problems(params)
    if schema_errors:
        raise ParamsError(_format(source, schema_errors))
    fill_defaults(params, load_schema())
    semantic_errors = semantic_problems(params)
    if semantic_errors:
        raise ParamsError(_format(source, semantic_errors))
    return params


def dump_params(params: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``params`` as YAML (key order kept), atomically."""
    text = yaml.safe_dump(params, sort_keys=False, allow_unicode=True, default_flow_style=None)
    atomic_write_text(path, text)


def apply_overrides(
    params: dict[str, Any], overrides: list[str], source: str = "<params>"
) -> dict[str, Any]:
    """Return a copy of ``params`` with ``key.path=value`` overrides applied.

    List items are addressed by index (``directions.0.target=synth_a``). Missing
    intermediate mappings are created; unknown keys are then caught by the schema.
    """
    out = copy.deepcopy(params)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ParamsError(f"override {item!r}: expected KEY.PATH=VALUE, e.g. finetune.epochs=3")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            raise ParamsError(f"override {item!r}: value is not valid YAML ({exc})") from exc
        if isinstance(value, str) and _FLOATISH_RE.match(value):
            value = float(value)  # YAML 1.1 reads 1e-4 as a string
        parts = key.split(".")
        node: Any = out
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            where = ".".join(parts[: depth + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ParamsError(
                        f"override {item!r}: {where} is not an index of a list of "
                        f"{len(node)} item(s) ({source})"
                    )
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    if part not in node or node[part] is None:
                        node[part] = {}
                    node = node[part]
            else:
                parent = ".".join(parts[:depth])
                raise ParamsError(
                    f"override {item!r}: {parent} is a {_tname(node)}, not a mapping or list "
                    f"({source})"
                )
    return out


def expand_env(obj: Any, _path: str = "") -> Any:
    """Expand ``${VAR}`` / ``${VAR:-default}`` in every string value (recursively).

    ``${VAR:-default}`` uses ``default`` when VAR is unset or empty, as in the shell. An
    unset variable without a default is an error naming the key.
    """
    if isinstance(obj, dict):
        return {k: expand_env(v, _join(_path, k)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [expand_env(v, f"{_path}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, str) and "${" in obj:

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            value = os.environ.get(name)
            if value:
                return value
            if default is not None:
                return default
            raise ParamsError(
                f"{_path or '(top level)'}: environment variable {name} in {obj!r} is not set; "
                f"set it or write ${{{name}:-default}}"
            )

        return _ENV_RE.sub(sub, obj)
    return obj


def unset_env_defaults(value: Any) -> list[tuple[str, str]]:
    """``(VAR, default)`` for each ``${VAR:-default}`` in ``value`` whose VAR is unset or empty,
    i.e. where :func:`expand_env` silently used the default (named when that path is missing)."""
    if not isinstance(value, str):
        return []
    return [(m.group(1), m.group(2)) for m in _ENV_RE.finditer(value)
            if m.group(2) is not None and not os.environ.get(m.group(1))]


# --------------------------------------------------------------------------- schema


@functools.lru_cache(maxsize=1)
def _schema_text() -> str:
    return SCHEMA_PATH.read_text(encoding="utf-8")


def load_schema() -> dict[str, Any]:
    """The params JSON schema (a fresh copy)."""
    return json.loads(_schema_text())


@functools.lru_cache(maxsize=1)
def _validator() -> Any:
    import jsonschema

    # The schema itself is checked against the 2020-12 metaschema by tests/test_config.py,
    # not here: that check costs ~0.17 s, paid by every lf2 command and Snakemake start-up.
    return jsonschema.Draft202012Validator(load_schema())


def schema_problems(params: Any) -> list[str]:
    """Human-readable schema violations, one per line, each naming its key path."""
    problems: list[str] = []
    for err in sorted(
        _validator().iter_errors(params), key=lambda e: [str(p) for p in e.absolute_path]
    ):
        for msg in _describe(err):
            if msg not in problems:
                problems.append(msg)
    return problems


def fill_defaults(params: dict[str, Any], schema: dict[str, Any]) -> None:
    """Fill ``default`` values of missing optional keys, following ``properties`` only."""
    for key, sub in schema.get("properties", {}).items():
        if key not in params and "default" in sub:
            params[key] = copy.deepcopy(sub["default"])
        if isinstance(params.get(key), dict) and "properties" in sub:
            fill_defaults(params[key], sub)


def _describe(err: Any) -> list[str]:
    path = _dotted(err.absolute_path)
    where = path or "(top level)"
    kind = err.validator
    inst = err.instance
    sch = err.schema
    if kind == "enum":
        allowed = ", ".join(_show(v) for v in err.validator_value)
        return [f"{where}: {_show(inst)} is not allowed; expected one of: {allowed}"]
    if kind == "const":
        return [f"{where}: {_show(inst)} is not allowed; expected {_show(err.validator_value)}"]
    if kind == "type":
        hint = ""
        if isinstance(inst, str) and _FLOATISH_RE.match(inst):
            hint = " (YAML reads a number like 1e-4 as text: write 1.0e-4)"
        return [
            f"{where}: expected {_types(err.validator_value)}, got {_tname(inst)} {_show(inst)}{hint}"
        ]
    if kind == "required":
        missing = [k for k in err.validator_value if k not in inst]
        return [f"{_join(path, k)}: required key is missing" for k in missing]
    if kind == "additionalProperties":
        allowed = list(sch.get("properties", {}))
        extras = [k for k in inst if k not in allowed]
        return [
            f"{_join(path, k)}: unknown key; allowed keys here: {', '.join(allowed)}"
            for k in extras
        ]
    if kind == "pattern":
        desc = sch.get("description") or f"text matching {err.validator_value}"
        what = "key " if "propertyNames" in err.absolute_schema_path else ""
        return [f"{where}: {what}{_show(inst)} is not valid; expected {desc}"]
    if kind == "propertyNames":
        return [f"{where}: {err.message}"]
    if kind == "anyOf":
        desc = sch.get("description", "one of the allowed forms")
        return [f"{where}: {_show(inst)} is not valid; expected {desc}"]
    return [f"{where}: {err.message}"]


# --------------------------------------------------------------------------- sections


def section_defaults(section: str) -> dict[str, Any]:
    """The schema's defaults of one params section (e.g. ``evaluate``), for callers that
    have no params file (``lf2 evaluate --features`` without ``--params``)."""
    props = load_schema()["properties"][section]["properties"]
    return {k: v["default"] for k, v in props.items() if "default" in v}


def lookup(params: dict[str, Any], dotted: str) -> Any:
    """``lookup(p, "finetune.clustering.method")``; ParamsError naming a missing key."""
    node: Any = params
    for part in dotted.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise ParamsError(f"params have no key {dotted!r}")
    return node


# --------------------------------------------------------------------------- helpers


def _format(source: str, problems: list[str]) -> str:
    if len(problems) == 1:
        return f"{source}: invalid params: {problems[0]}"
    return f"{source}: invalid params:\n" + "\n".join(f"  - {p}" for p in problems)


def _dotted(parts: Any) -> str:
    out = ""
    for p in parts:
        out = f"{out}[{p}]" if isinstance(p, int) else _join(out, str(p))
    return out


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict | list):
        text = json.dumps(value, default=str)
        return text if len(text) <= 60 else text[:57] + "..."
    return repr(value) if isinstance(value, str) else str(value)


def _types(spec: Any) -> str:
    names = spec if isinstance(spec, list) else [spec]
    return " or ".join(names)


def _tname(value: Any) -> str:
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "list",
        dict: "mapping",
        type(None): "null",
    }.get(type(value), type(value).__name__)
