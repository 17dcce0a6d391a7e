# One run = (paper, scale, variant, seed): its training stages, its evaluation, its MLflow record.
RUN = "results/runs/{paper}/{scale}/{variant}/seed{seed}"
RUN_ARGS = "--paper {wildcards.paper} --scale {wildcards.scale} --variant {wildcards.variant} --seed {wildcards.seed}"


def _run(w):
    return PLAN.run(w.paper, w.variant, w.seed)


# What each heavy job asks of the cluster (harness.plan.Plan.resources): numbers where all jobs agree.
TRAIN_NEEDS = PLAN.rule_resources(train=True)
EVAL_NEEDS = PLAN.rule_resources(train=False)


rule train_stage:
    input:
        per_job(lambda w: PLAN.stage_inputs(_run(w), int(w.stage))),
    output:
        RUN + "/stage{stage}/train.json",
    params:
        fingerprint=per_job(lambda w: PLAN.stage_fingerprint(_run(w), int(w.stage))),
    threads: 1
    resources:
        **TRAIN_NEEDS,
    log:
        RUN + "/stage{stage}/train.log",
    shell:
        "{HARNESS} --threads {threads} train " + RUN_ARGS + " --stage {wildcards.stage} > {log} 2>&1"


rule evaluate_run:
    input:
        per_job(lambda w: PLAN.eval_inputs(_run(w))),
    output:
        RUN + "/eval/metrics.json",
    params:
        fingerprint=per_job(lambda w: PLAN.eval_fingerprint(_run(w))),
    threads: 1
    resources:
        **EVAL_NEEDS,
    log:
        RUN + "/eval/eval.log",
    shell:
        "{HARNESS} --threads {threads} evaluate " + RUN_ARGS + " > {log} 2>&1"


rule evaluate_checkpoint:
    input:
        per_job(lambda w: PLAN.checkpoint_eval_inputs(_run(w), int(w.stage))),
    output:
        RUN + "/stage{stage}/evals/step{step}/metrics.json",
    params:
        fingerprint=per_job(lambda w: PLAN.checkpoint_eval_fingerprint(_run(w), int(w.stage), int(w.step))),
    threads: 1
    resources:
        **EVAL_NEEDS,
    log:
        RUN + "/stage{stage}/evals/step{step}/eval.log",
    shell:
        "{HARNESS} --threads {threads} evaluate " + RUN_ARGS + " --stage {wildcards.stage} --step {wildcards.step} > {log} 2>&1"


rule track_run:
    input:
        per_job(lambda w: PLAN.track_inputs(_run(w))),
    output:
        RUN + "/tracked.json",
    params:
        fingerprint=per_job(lambda w: PLAN.track_fingerprint(_run(w))),
    log:
        RUN + "/track.log",
    shell:
        "{HARNESS} track " + RUN_ARGS + " > {log} 2>&1"


rule summarize_paper:
    input:
        per_job(lambda w: PLAN.summary_inputs(w.paper)),
    output:
        "results/runs/{paper}/{scale}/leaderboard.json",
    params:
        fingerprint=per_job(lambda w: PLAN.summary_fingerprint(w.paper)),
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
