# lf2: the whole LF² benchmark as one DAG.
#
#   snakemake -c2                                   # everything, default (synthetic) params
#   snakemake -c2 --configfile params/smoke.yaml    # another params file of params/
#   snakemake -c2 --config params=elsewhere/p.yaml  # any params file
#   snakemake -c2 results/metrics/A-to-B/lf2_m48/seed0.json   # one Table II row, one seed
#
# Jobs (paths, commands, params keys) come from lf2.workflow_dag, which `lf2 dvc` also
# uses to write dvc.yaml: the two workflow managers cannot drift. See docs/workflow.md.

import os
import re
import shlex
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from lf2 import layout
from lf2 import workflow_dag as dag
from lf2.config import SCHEMA_PATH, load_params, rows_for
from lf2.errors import ParamsError
from lf2.snakemake_config import params_file_from_config

min_version("8.0")


# No `configfile:` directive: `config` is exactly what the command line gave (Snakemake's
# documented semantics), and the params file follows from it (lf2.snakemake_config):
#   (nothing)                      -> params/default.yaml
#   --configfile params/smoke.yaml -> config holds that file's content; the params file is
#                                     the one of params/*.yaml with exactly that content
#   --config params=PATH           -> any params file (e.g. outside params/)
#   --config 'workflow={...}'      -> the workflow.* keys, read by this Snakefile only
try:
    PARAMS_FILE, _WORKFLOW = params_file_from_config(config, os.getcwd())
    PARAMS = load_params(PARAMS_FILE, _WORKFLOW)
except ParamsError as exc:
    raise WorkflowError(f"invalid params, no job started: {exc}") from None
# the one schema, through Snakemake's own validator too (on the resolved values)
validate(dict(PARAMS), str(SCHEMA_PATH))

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
    seed=_alternatives(str(s) for s in layout.seeds(PARAMS)),


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
