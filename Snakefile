# lf2: the whole LF² benchmark as one DAG.
#
#   snakemake -c2                                   # everything, default (synthetic) params
#   snakemake -c2 --configfile params/smoke.yaml    # another params file
#   snakemake -c2 results/metrics/A-to-B/lf2_m48.json   # one Table II row
#
# Jobs (paths, commands, params keys) come from lf2.workflow_dag, which `lf2 dvc` also
# uses to write dvc.yaml: the two workflow managers cannot drift. See docs/workflow.md.

import os
import re
import shlex
import sys

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from lf2 import workflow_dag as dag
from lf2.config import SCHEMA_PATH, load_params, rows_for
from lf2.errors import ParamsError

min_version("8.0")


configfile: "params/default.yaml"


def _params_file():
    """The params file in use: the --configfile given, else params/default.yaml."""
    cli = [str(p) for p in workflow.overwrite_configfiles]
    if len(cli) > 1:
        raise WorkflowError(
            f"lf2 stages read exactly one params file; got --configfile {' '.join(cli)}. "
            "Merge them into one file."
        )
    path = cli[0] if cli else "params/default.yaml"
    return dag.relative_params_file(path, os.getcwd())


def _cli_overrides():
    """`--config` may set only the workflow.* keys (lf2 jobs read the params file)."""
    given = dict(workflow.config_settings.config or {})
    extra = sorted(set(given) - {"workflow"})
    if extra:
        raise WorkflowError(
            f"--config {', '.join(extra)}: only workflow.* keys can be set with --config "
            f"(e.g. --config 'workflow={{gpu_slot: true}}'); put other changes in a params "
            "file and pass it with --configfile"
        )
    wf = given.get("workflow") or {}
    if not isinstance(wf, dict):
        raise WorkflowError(f"--config workflow={wf!r}: expected a mapping, e.g. {{gpu_slot: true}}")
    return [f"workflow.{k}={v}" for k, v in wf.items()]


PARAMS_FILE = _params_file()
try:
    PARAMS = load_params(PARAMS_FILE, _cli_overrides())
except ParamsError as exc:
    raise WorkflowError(f"invalid params, no job started: {exc}") from None

# Snakemake merged the --configfile over params/default.yaml; make `config` the file in
# use (plus the --config workflow keys), then validate it with the schema as well.
with open(PARAMS_FILE, encoding="utf-8") as _fh:
    _raw = yaml.safe_load(_fh) or {}
config.clear()
config.update(_raw)
config["workflow"] = dict(PARAMS["workflow"])
validate(config, str(SCHEMA_PATH))

JOBS = dag.build_jobs(PARAMS, PARAMS_FILE)
JOB_INDEX = dag.job_index(JOBS)
PATTERNS = dag.output_patterns(PARAMS)

# optional wrapper that gives each training job its own GPU (profiles/local-gpus)
GPU_SLOT = ""
if PARAMS["workflow"]["gpu_slot"]:
    _script = os.path.join(workflow.basedir, "workflow", "scripts", "gpu_slot.py")
    GPU_SLOT = f"{shlex.quote(sys.executable)} {shlex.quote(_script)} --gpus {PARAMS['workflow']['gpus']} -- "


def job(rule, wildcards):
    return dag.find_job(JOB_INDEX, rule, wildcards)


def job_inputs(rule):
    return lambda w: list(job(rule, w).inputs)


def job_args(rule):
    return lambda w: job(rule, w).args


def job_keys(rule):
    """The params values a job reads: a change reruns it (Snakemake's params trigger)."""
    return lambda w: dag.param_values(PARAMS, job(rule, w).param_keys)


def _alternatives(names):
    return "|".join(re.escape(n) for n in names)


wildcard_constraints:
    dataset=_alternatives(dag.used_datasets(PARAMS)),
    direction=_alternatives(d["name"] for d in PARAMS["directions"]),
    row=_alternatives(rows_for(PARAMS)),


rule all:
    input:
        dag.final_targets(PARAMS),
    default_target: True


include: "workflow/rules/resources.smk"
include: "workflow/rules/prepare.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
