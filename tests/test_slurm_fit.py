"""lf2.slurm without a cluster: sinfo parsing, the fit check, GPU requests, job sizes."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from lf2 import slurm
from lf2.config import load_params, load_schema
from lf2.errors import ParamsError
from lf2.slurm import Partition, Request

SINFO = "cpu*|2|24105|1:00:00|(null)\ngpu|32|256000|2-00:00:00|gpu:a100:4(S:0-1)\ngpu|64+|512000|2-00:00:00|gpu:a100:8\n"


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("infinite", None), ("30", 30), ("1:00:00", 60), ("2-12:00:00", 3600), ("5:30", 6)],
)
def test_time_limits(text, minutes):
    assert slurm.parse_time_limit(text) == minutes


def test_sinfo_partitions_take_their_largest_node():
    parts = slurm.parse_sinfo(SINFO)
    assert parts["cpu"] == Partition("cpu", 2, 24105, 60, 0, default=True)
    assert parts["gpu"] == Partition("gpu", 64, 512000, 2880, 8, default=False)


def test_misfits_name_the_job_and_the_limit():
    parts = slurm.parse_sinfo(SINFO)
    fits = Request("prepare--synth_a", None, 1, 500, 10, 0)
    assert slurm.misfits([fits], parts) == []
    problems = slurm.misfits(
        [
            Request("pretrain--A-to-B", None, 8, 30000, 90, 1),
            Request("finetune--A-to-B--baseline", "gpu", 8, 1000, 3000, 9),
            Request("table", "nope", 1, 1, 1, 0),
        ],
        parts,
    )
    assert problems == [
        "pretrain--A-to-B: 8 threads > 2 CPUs per node in 'cpu'",
        "pretrain--A-to-B: mem_mb=30000 > 24105 MB per node in 'cpu'",
        "pretrain--A-to-B: runtime=90 min > MaxTime 60 min of 'cpu'",
        "pretrain--A-to-B: 1 GPU(s) > 0 per node in 'cpu'",
        "finetune--A-to-B--baseline: runtime=3000 min > MaxTime 2880 min of 'gpu'",
        "finetune--A-to-B--baseline: 9 GPU(s) > 8 per node in 'gpu'",
        "table: asks for partition 'nope', which sinfo does not list (cpu, gpu)",
    ]


def test_group_jobs_are_checked_once_with_the_group_resources():
    def job(rule, threads, group=None, local=False):
        res = {"slurm_partition": "cpu", "mem_mb": 100, "runtime": 5}
        return SimpleNamespace(
            rule=SimpleNamespace(name=rule),
            wildcards=["A-to-B"],
            threads=threads,
            resources=res,
            is_local=local,
            group=group,
        )

    group = SimpleNamespace(
        groupid="trained",
        threads=3,
        jobs=[],
        resources={"slurm_partition": "cpu", "mem_mb": 100, "runtime": 10},
    )
    jobs = [
        job("finetune", 2, group),
        job("evaluate", 1, group),
        job("pretrain", 1),
        job("all", 1, local=True),
    ]
    group.jobs = jobs[:2]
    reqs = slurm.dag_requests(jobs, lambda j: j.group)
    assert [r.job for r in reqs] == [
        "group trained (evaluate--A-to-B, finetune--A-to-B)",
        "pretrain--A-to-B",
    ]
    assert reqs[0].threads == 3 and reqs[0].runtime == 10


def test_gpu_requests_follow_the_device(monkeypatch):
    assert slurm.gpu_request("cpu", "slurm") == 0
    assert slurm.gpu_request("cuda:1", "slurm") == 1
    assert slurm.gpu_request("auto", None) == 1  # locally: one unit of --resources gpu=N
    monkeypatch.setattr(slurm, "cluster_has_gpus", lambda: False)
    assert slurm.gpu_request("auto", "slurm") == 0  # CPU-only cluster: ask for none
    assert slurm.gpu_request("auto", "lf2-slurm") == 0  # the profile's executor alike
    monkeypatch.setattr(slurm, "cluster_has_gpus", lambda: True)
    assert slurm.gpu_request("auto", "slurm") == 1
    assert slurm.gpu_request("auto", "lf2-slurm") == 1


def test_job_sizes_come_from_the_params():
    smoke = slurm.job_requests(load_params("params/smoke.yaml"))
    assert smoke["finetune"] == {"threads": 1, "mem_mb": 2000, "runtime": 10}  # from `threads`
    default = slurm.job_requests(load_params("params/default.yaml"))
    for rule, base in slurm.DEFAULT_RESOURCES.items():  # threads: 1 pins the torch rules' CPUs
        threads = 1 if rule in slurm.TORCH_RULES else base["threads"]
        assert default[rule] == {**base, "threads": threads}
    unpinned = slurm.job_requests({**load_params("params/default.yaml"), "threads": 0})
    assert unpinned == slurm.DEFAULT_RESOURCES
    paper = slurm.job_requests(load_params("params/paper.yaml"))
    assert paper["finetune"]["mem_mb"] == 64000
    assert paper["table"] == slurm.DEFAULT_RESOURCES["table"]  # not set there: default


def test_bad_job_sizes_are_refused(tmp_path):
    from lf2.errors import ParamsError

    text = (
        open("params/smoke.yaml")
        .read()
        .replace("pretrain: {mem_mb: 2000", "pretrain: {threads: 0, mem_mb: 2000", 1)
        .replace("extends: default.yaml", f"extends: {os.path.abspath('params/default.yaml')}")
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ParamsError, match="workflow.resources.pretrain.threads"):
        load_params(bad)


def test_job_names_in_fit_reports_are_the_dag_names():
    job = SimpleNamespace(
        rule=SimpleNamespace(name="finetune"),
        wildcards={"direction": "A-to-B", "row": "lf2_m48", "seed": "0"},
    )
    assert slurm._job_name(job) == "finetune--A-to-B--lf2_m48--seed0"
    unknown = SimpleNamespace(rule=SimpleNamespace(name="other"), wildcards=["x"])
    assert slurm._job_name(unknown) == "other--x"


@pytest.mark.parametrize(
    ("local_rules", "expected"),
    [
        # nothing local (params/paper.yaml): every evaluation shares its training's job
        ((), {"prepare": None, "pretrain": "pretrained", "finetune": "trained",
              "evaluate direct": "pretrained", "evaluate baseline": "trained",
              "table": "report", "figures": "report"}),
        # the synthetic default: short jobs in Snakemake's process, so in no group
        (("prepare", "table", "figures"), {"prepare": None, "pretrain": "pretrained",
              "finetune": "trained", "evaluate direct": "pretrained",
              "evaluate baseline": "trained", "table": None, "figures": None}),
        # a local training rule leaves its evaluations ungrouped (a group would hold one job)
        (("pretrain", "table"), {"pretrain": None, "evaluate direct": None,
              "evaluate baseline": "trained", "table": None, "figures": None}),
        (("evaluate",), {"pretrain": "pretrained", "finetune": "trained",
              "evaluate direct": None, "evaluate baseline": None}),
    ],
)  # fmt: skip
def test_job_groups_follow_the_local_rules(local_rules, expected):
    for job, group in expected.items():
        rule, _, row = job.partition(" ")
        assert slurm.job_group(rule, row or None, local_rules) == group, job


def test_default_params_keep_short_jobs_local_and_paper_params_keep_none():
    assert load_params("params/smoke.yaml")["workflow"]["local_rules"] == ["prepare", "table", "figures"]
    assert load_params("params/paper.yaml")["workflow"]["local_rules"] == []
    schema = load_schema()["properties"]["workflow"]["properties"]["local_rules"]
    assert schema["items"]["enum"] == list(slurm.RULES)  # the schema names the DAG's rules


@pytest.mark.parametrize("value", ["[nope]", "[table, table]", "table"])
def test_bad_local_rules_are_refused(value):
    with pytest.raises(ParamsError, match=r"workflow\.local_rules"):
        load_params("params/smoke.yaml", [f"workflow.local_rules={value}"])
