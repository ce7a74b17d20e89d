# Evaluation of every Table II row on the target's query/gallery split; `direct`
# evaluates the pre-training checkpoint. Each metrics file is its own target.


rule evaluate:
    input:
        job_inputs("evaluate"),
    output:
        PATTERNS["evaluate"],
    log:
        dag.log_pattern("evaluate"),
    benchmark:
        dag.benchmark_pattern("evaluate")
    params:
        args=job_args("evaluate"),
        cfg=job_keys("evaluate"),
    threads: RES["evaluate"]["threads"]
    localrule: "evaluate" in LOCAL_RULES
    group: group("evaluate")
    resources:
        **request("evaluate"),
    shell:
        "{GPU_SLOT}lf2 evaluate {params.args} > {log} 2>&1"
