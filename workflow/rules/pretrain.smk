# Source pre-training, one per direction (it may forward target batches for BN
# statistics). state.pt next to model.pt is not an output: a killed job resumes.


rule pretrain:
    input:
        job_inputs("pretrain"),
    output:
        PATTERNS["pretrain"],
    log:
        dag.log_pattern("pretrain"),
    benchmark:
        dag.benchmark_pattern("pretrain")
    params:
        args=job_args("pretrain"),
        cfg=job_keys("pretrain"),
    threads: RES["pretrain"]["threads"]
    localrule: "pretrain" in LOCAL_RULES
    group: group("pretrain")
    resources:
        **request("pretrain"),
    shell:
        "{GPU_SLOT}lf2 pretrain {params.args} > {log} 2>&1"
