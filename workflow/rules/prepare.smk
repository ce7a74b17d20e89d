# Dataset preparation: write <data>/<dataset>/manifest.csv + meta.json (synthetic
# datasets are rendered, real ones validated; their images stay under the root).


rule prepare:
    output:
        manifest=PATTERNS["prepare"],
        meta=PATTERNS["prepare_meta"],
    log:
        dag.log_pattern("prepare"),
    benchmark:
        dag.benchmark_pattern("prepare")
    params:
        args=job_args("prepare"),
        cfg=job_keys("prepare"),
    threads: RES["prepare"]["threads"]
    localrule: "prepare" in LOCAL_RULES
    group: group("prepare")
    resources:
        **request("prepare"),
    shell:
        "lf2 prepare {params.args} > {log} 2>&1"
