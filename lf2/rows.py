"""The Table II rows of a params file, derived from the variant registry.

``rows_for(params)`` lists them in table order (``direct``, ``baseline``, ``no_fm``,
``lf2_m<M>`` per M of ``rows.clusters``, plus any registered variant); ``row_spec`` says
what a row trains and how the tables name it. Every list of rows elsewhere (DAG, tables,
figures) comes from here.
"""

from __future__ import annotations

from typing import Any

from lf2.errors import ParamsError


def row_variants(params: dict[str, Any]) -> list[str]:
    """The variants with rows in Table II, in table order: ``rows.variants`` when given, else
    every registered variant marked ``default_row`` (:mod:`lf2.train.variants`)."""
    from lf2.train.variants import VARIANTS

    given = params["rows"].get("variants")
    return [n for n, v in VARIANTS.items() if (n in given if given else v.default_row)]


def rows_for(params: dict[str, Any]) -> list[str]:
    """Table II rows in table order, e.g. direct, baseline, no_fm, lf2_m<M> per M."""
    from lf2.train.variants import VARIANTS

    rows: list[str] = []
    for name in row_variants(params):
        cls = VARIANTS[name]
        ms = params["rows"]["clusters"] if cls.per_clusters else [None]
        rows += [cls.row_name(m) for m in ms]
    return rows


def row_spec(params: dict[str, Any], row: str) -> dict[str, Any]:
    """What a Table II row trains: ``{"variant", "clusters", "display_name"}``.

    ``clusters`` is None for a variant that does not fine-tune (``direct``), the row's M for a
    variant with a row per ``rows.clusters`` value (``lf2_m<M>``), else
    ``rows.ablation_clusters``. Raises ParamsError for a row that ``rows_for`` does not list.
    """
    from lf2.train.variants import VARIANTS

    abl = params["rows"]["ablation_clusters"]
    for name in row_variants(params):
        cls = VARIANTS[name]
        ms = params["rows"]["clusters"] if cls.per_clusters else [abl if cls.trains else None]
        for m in ms:
            if cls.row_name(m if cls.per_clusters else None) == row:
                return {"variant": name, "clusters": m, "display_name": cls.display(m)}
    raise ParamsError(
        f"row {row!r} is not a Table II row of these params; expected one of: "
        f"{', '.join(rows_for(params))} (<variant>_m<M> rows come from rows.clusters)"
    )


def trained_rows(params: dict[str, Any]) -> list[str]:
    """Table II rows that have their own fine-tuning run (all but ``direct``)."""
    from lf2.train.variants import VARIANTS

    return [r for r in rows_for(params) if VARIANTS[row_spec(params, r)["variant"]].trains]


def reference_row(params: dict[str, Any], variant: str) -> str:
    """The one row of ``variant`` used where a single line is needed (Table I, figures).

    For a variant with a row per M_t: the row at ``rows.ablation_clusters`` (the M_t of the
    ablation rows, the paper's 700) when it is run, else the row whose M_t is closest to it.
    Fixed before any result is seen: never chosen by test-set accuracy.
    """
    rows = [r for r in rows_for(params) if row_spec(params, r)["variant"] == variant]
    if not rows:
        raise ParamsError(f"these params have no {variant!r} row (rows.clusters / rows.variants)")
    target = params["rows"]["ablation_clusters"]
    return min(rows, key=lambda r: (abs(int(row_spec(params, r)["clusters"] or target) - target), r))


def figure_rows(params: dict[str, Any]) -> list[str]:
    """The rows the t-SNE and Grad-CAM figures show: one per ``in_figures`` variant."""
    from lf2.train.variants import VARIANTS

    return [reference_row(params, v) for v in row_variants(params) if VARIANTS[v].in_figures]
