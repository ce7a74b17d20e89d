# What every job asks a scheduler for: threads, mem_mb and runtime (minutes) from the
# params' workflow.resources (defaults: lf2.slurm.DEFAULT_RESOURCES), GPUs from `device`
# (cpu: none). With the SLURM executor, jobs that no partition of theirs can ever run
# stop the workflow before the first sbatch. Which jobs share a cluster job (group:) and
# which run in Snakemake's own process (localrule:, the params' workflow.local_rules):
# lf2.slurm.job_group. See docs/workflow.md, "Running on SLURM".

from lf2 import slurm as lf2_slurm

RES = lf2_slurm.job_requests(PARAMS)


def executor_name():
    """The executor plugin's name (None before Snakemake has chosen one)."""
    plugin = workflow.executor_plugin
    return plugin.name if plugin else None


def gpus(wildcards):
    """Evaluated per job, once Snakemake knows its executor (see lf2.slurm.gpu_request)."""
    return lf2_slurm.gpu_request(PARAMS["device"], executor_name())



LOCAL_RULES = PARAMS["workflow"]["local_rules"]


def group(rule):
    """group: for a rule (None: no group). Cluster executors only; see lf2.slurm.job_group."""
    if rule == "evaluate":
        return lambda wildcards: lf2_slurm.job_group(rule, wildcards.row, LOCAL_RULES)
    return lf2_slurm.job_group(rule, None, LOCAL_RULES)


def request(rule):
    """resources: for a rule (keyword arguments)."""
    res = {"mem_mb": RES[rule]["mem_mb"], "runtime": RES[rule]["runtime"]}
    if rule in lf2_slurm.GPU_RULES:
        res["gpu"] = gpus
    return res


onstart:
    if lf2_slurm.is_slurm_executor(executor_name()):
        _problems = lf2_slurm.misfits(
            lf2_slurm.dag_requests(workflow.dag.needrun_jobs(), workflow.dag.get_job_group),
            lf2_slurm.read_partitions(),
        )
        if _problems:
            raise WorkflowError(lf2_slurm.fit_report(_problems))
