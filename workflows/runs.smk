# One run = (paper, scale, variant, seed): its training stages, its evaluation, its MLflow record.
RUN = "results/runs/{paper}/{scale}/{variant}/seed{seed}"
RUN_ARGS = "--paper {wildcards.paper} --scale {wildcards.scale} --variant {wildcards.variant} --seed {wildcards.seed}"


def _run(w):
    return PLAN.run(w.paper, w.variant, w.seed)


def _needs(key, train):
    """A Snakemake resource function: what the job asks of the cluster (harness.plan.Plan.resources)."""
    return lambda w: PLAN.resources(_run(w), int(w.stage) if train else None)[key]


rule train_stage:
    input:
        lambda w: PLAN.stage_inputs(_run(w), int(w.stage)),
    output:
        RUN + "/stage{stage}/train.json",
    params:
        fingerprint=lambda w: PLAN.stage_fingerprint(_run(w), int(w.stage)),
    threads: 1
    resources:
        nodes=_needs("nodes", True),
        gpus=_needs("gpus", True),
        cpus_per_task=_needs("cpus_per_task", True),
        mem_mb=_needs("mem_mb", True),
        runtime=_needs("runtime", True),
    log:
        RUN + "/stage{stage}/train.log",
    shell:
        "{HARNESS} --threads {threads} train " + RUN_ARGS + " --stage {wildcards.stage} > {log} 2>&1"


rule evaluate_run:
    input:
        lambda w: PLAN.eval_inputs(_run(w)),
    output:
        RUN + "/eval/metrics.json",
    params:
        fingerprint=lambda w: PLAN.eval_fingerprint(_run(w)),
    threads: 1
    resources:
        nodes=_needs("nodes", False),
        gpus=_needs("gpus", False),
        cpus_per_task=_needs("cpus_per_task", False),
        mem_mb=_needs("mem_mb", False),
        runtime=_needs("runtime", False),
    log:
        RUN + "/eval/eval.log",
    shell:
        "{HARNESS} --threads {threads} evaluate " + RUN_ARGS + " > {log} 2>&1"


rule evaluate_checkpoint:
    input:
        lambda w: PLAN.checkpoint_eval_inputs(_run(w), int(w.stage)),
    output:
        RUN + "/stage{stage}/evals/step{step}/metrics.json",
    params:
        fingerprint=lambda w: PLAN.checkpoint_eval_fingerprint(_run(w), int(w.stage), int(w.step)),
    threads: 1
    resources:
        nodes=_needs("nodes", False),
        gpus=_needs("gpus", False),
        cpus_per_task=_needs("cpus_per_task", False),
        mem_mb=_needs("mem_mb", False),
        runtime=_needs("runtime", False),
    log:
        RUN + "/stage{stage}/evals/step{step}/eval.log",
    shell:
        "{HARNESS} --threads {threads} evaluate " + RUN_ARGS + " --stage {wildcards.stage} --step {wildcards.step} > {log} 2>&1"


rule track_run:
    input:
        lambda w: PLAN.track_inputs(_run(w)),
    output:
        RUN + "/tracked.json",
    params:
        fingerprint=lambda w: PLAN.track_fingerprint(_run(w)),
    log:
        RUN + "/track.log",
    shell:
        "{HARNESS} track " + RUN_ARGS + " > {log} 2>&1"


rule summarize_paper:
    input:
        lambda w: PLAN.summary_inputs(w.paper),
    output:
        "results/runs/{paper}/{scale}/leaderboard.json",
    params:
        fingerprint=lambda w: PLAN.summary_fingerprint(w.paper),
    log:
        "results/runs/{paper}/{scale}/summarize.log",
    shell:
        "{HARNESS} summarize --paper {wildcards.paper} --scale {wildcards.scale} > {log} 2>&1"


rule report_paper:
    input:
        "results/runs/{paper}/{scale}/leaderboard.json",
    output:
        page="results/reports/{paper}-{scale}.html",
        passk=report("results/reports/{paper}-{scale}/passk.png", category="pass@k", subcategory="{paper} [{scale}]"),
        training=report("results/reports/{paper}-{scale}/training.png", category="training curves", subcategory="{paper} [{scale}]"),
    log:
        "results/reports/{paper}-{scale}.log",
    shell:
        "{HARNESS} report {wildcards.paper} --scale {wildcards.scale} > {log} 2>&1"


rule report_index:
    input:
        PLAN.report_pages(),
    output:
        "results/reports/index.html",
    log:
        "results/reports/index.log",
    shell:
        "{HARNESS} report --index-only > {log} 2>&1"
