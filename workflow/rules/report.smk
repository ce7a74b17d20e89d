# Tables (Table II + Table I) and the paper-style figures, from the runs and metrics.


rule table:
    input:
        job_inputs("table"),
    output:
        layout.table_paths(PARAMS),
    log:
        dag.log_pattern("table"),
    benchmark:
        dag.benchmark_pattern("table")
    params:
        args=job_args("table"),
        cfg=job_keys("table"),
    threads: RES["table"]["threads"]
    localrule: "table" in LOCAL_RULES
    group: group("table")
    resources:
        **request("table"),
    shell:
        "lf2 table {params.args} > {log} 2>&1"


rule figures:
    input:
        job_inputs("figures"),
    output:
        layout.figure_paths(PARAMS),
    log:
        dag.log_pattern("figures"),
    benchmark:
        dag.benchmark_pattern("figures")
    params:
        args=job_args("figures"),
        cfg=job_keys("figures"),
    threads: RES["figures"]["threads"]
    localrule: "figures" in LOCAL_RULES
    group: group("figures")
    resources:
        **request("figures"),
    shell:
        "lf2 figures {params.args} > {log} 2>&1"
