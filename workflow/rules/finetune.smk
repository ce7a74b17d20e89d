# Target fine-tuning: one job per direction and Table II row (baseline, no_fm, lf2_m<M>).


rule finetune:
    input:
        job_inputs("finetune"),
    output:
        PATTERNS["finetune"],
    log:
        dag.log_pattern("finetune"),
    benchmark:
        dag.benchmark_pattern("finetune")
    params:
        args=job_args("finetune"),
        cfg=job_keys("finetune"),
    wildcard_constraints:
        row=_alternatives(dag.finetune_rows(PARAMS)),
    threads: RES["finetune"]["threads"]
    localrule: "finetune" in LOCAL_RULES
    group: group("finetune")
    resources:
        **request("finetune"),
    shell:
        "{GPU_SLOT}lf2 finetune {params.args} > {log} 2>&1"
