"""The checks of a params file that its JSON schema cannot express (step 5 of
:func:`lf2.config.load_params`): directions name existing datasets, milestones increase, the
feature map is tall enough for the parts, the k-reciprocal bounds, ... Each problem is one
line naming its key path; the params have already passed the schema.
"""

from __future__ import annotations

from typing import Any


def semantic_problems(params: dict[str, Any]) -> list[str]:
    """Checks the schema cannot express; assumes the params passed the schema."""
    problems: list[str] = []
    datasets = params["datasets"]
    names: set[str] = set()
    for i, d in enumerate(params["directions"]):
        at = f"directions[{i}]"
        if d["name"] in names:
            problems.append(
                f"{at}.name: direction {d['name']!r} appears twice; names must be unique"
            )
        names.add(d["name"])
        for end in ("source", "target"):
            if d[end] not in datasets:
                problems.append(
                    f"{at}.{end}: dataset {d[end]!r} is not defined; defined datasets: "
                    f"{', '.join(datasets)}"
                )
        if d["source"] == d["target"]:
            problems.append(
                f"{at}: source and target are both {d['source']!r}; expected two domains"
            )

    problems += _validation_problems(params)

    for stage in ("pretrain",):
        ms = params[stage]["milestones"]
        if any(b <= a for a, b in zip(ms, ms[1:], strict=False)):
            problems.append(f"{stage}.milestones: {ms} must be strictly increasing")

    for key in ("pretrain", "finetune"):
        if params[key]["batch_k"] < 2:
            problems.append(f"{key}.batch_k: triplet mining needs at least 2 images per identity")

    stride = 16 if params["model"]["last_stride"] == 1 else 32
    feat_h = params["input"]["height"] // stride
    k = params["model"]["num_parts"]
    if feat_h < k:
        problems.append(
            f"input.height: {params['input']['height']} px gives a {feat_h}-row feature map "
            f"(stride {stride}), too short to split into model.num_parts = {k} parts; "
            f"expected height >= {k * stride}"
        )

    clusters = list(params["rows"]["clusters"]) + [params["rows"]["ablation_clusters"]]
    for d in params["directions"]:
        tgt = datasets.get(d["target"])
        if tgt and tgt["kind"] == "synthetic":
            n_train = tgt["train_ids"] * tgt["images_per_id"]
            too_many = sorted({m for m in clusters if m > n_train})
            if too_many and params["finetune"]["clustering"]["method"] != "dbscan":
                problems.append(
                    f"rows: M_t = {too_many} exceed the ~{n_train} training images "
                    f"(train_ids x images_per_id) of synthetic target {d['target']!r}"
                )

    batch_p = params["finetune"]["batch_p"]
    if params["finetune"]["clustering"]["method"] == "kmeans" and batch_p > min(clusters):
        problems.append(
            f"finetune.batch_p: {batch_p} identities per batch, but k-means makes at most M_t = "
            f"{min(clusters)} pseudo identities (rows.clusters / rows.ablation_clusters); expected "
            f"finetune.batch_p <= {min(clusters)}"
        )

    for name, ds in datasets.items():
        if "cuhk03_type" in ds and ds["kind"] != "cuhk03":
            problems.append(
                f"datasets.{name}.cuhk03_type: only meaningful for kind cuhk03, not {ds['kind']!r}"
            )

    if params["finetune"]["ema_buffers"] and params["finetune"]["teacher_bn"] != "student":
        problems.append(
            f"finetune.ema_buffers: true averages the student's BN statistics into the teacher, "
            f"which contradicts finetune.teacher_bn = {params['finetune']['teacher_bn']!r} (the "
            f"teacher's own); expected ema_buffers: false or teacher_bn: student"
        )
    from lf2.train.variants import VARIANTS

    unknown = [v for v in params["rows"].get("variants") or [] if v not in VARIANTS]
    if unknown:
        problems.append(
            f"rows.variants: {', '.join(map(repr, unknown))} not a registered variant; "
            f"expected some of: {', '.join(VARIANTS)}"
        )

    for prefix, sec in (("evaluate", params["evaluate"]),
                        ("finetune.clustering", params["finetune"]["clustering"])):
        problem = k_bound_problem(prefix, sec["k1"], sec["k2"])
        if problem:
            problems.append(problem)
    return problems


def _validation_problems(params: dict[str, Any]) -> list[str]:
    """``directions[].validation``: another rendering of the target's domain, never the target."""
    problems: list[str] = []
    datasets = params["datasets"]
    for i, d in enumerate(params["directions"]):
        name = d.get("validation")
        if name is None:
            continue
        at = f"directions[{i}].validation"
        val, tgt = datasets.get(name), datasets.get(d["target"])
        if val is None:
            problems.append(f"{at}: dataset {name!r} is not defined; defined datasets: {', '.join(datasets)}")
        elif name == d["target"]:
            problems.append(f"{at}: {name!r} is the target itself; expected a dataset with other "
                            "identities (the test split must never tune)")
        elif tgt is not None and tgt["kind"] == "synthetic":
            if val["kind"] != "synthetic" or val.get("domain") != tgt.get("domain"):
                problems.append(f"{at}: {name!r} must be synthetic domain {tgt.get('domain')!r} like "
                                f"the target {d['target']!r}, got kind {val['kind']!r} domain "
                                f"{val.get('domain')!r}")
            elif val.get("seed") == tgt.get("seed"):
                problems.append(f"{at}: {name!r} has seed {val.get('seed')}, the identity seed of the "
                                f"target {d['target']!r}; expected another seed (other identities)")
    return problems


def k_bound_problem(prefix: str, k1: Any, k2: Any) -> str | None:
    """The one rule for the k-reciprocal neighbourhoods: integers with 1 <= k2 <= k1."""
    if not (isinstance(k1, int) and isinstance(k2, int) and k1 >= 1 and 1 <= k2 <= k1):
        return f"{prefix}.k2: {k2!r} must be an integer in [1, {prefix}.k1 = {k1!r}]"
    return None
