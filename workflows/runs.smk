# One run = (paper, scale, variant, seed): its training stages, its evaluation, its MLflow record.
RUN = "results/runs/{paper}/{scale}/{variant}/seed{seed}"
RUN_ARGS = "--paper {wildcards.paper} --scale {wildcards.scale} --variant {wildcards.variant} --seed {wildcards.seed}"


def _run(w):
    return PLAN.run(w.paper, w.variant, w.seed)


rule train_stage:
    input:
        lambda w: PLAN.stage_inputs(_run(w), int(w.stage)),
    output:
        RUN + "/stage{stage}/train.json",
    params:
        fingerprint=lambda w: PLAN.stage_fingerprint(_run(w), int(w.stage)),
    threads: 1
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
    log:
        RUN + "/eval/eval.log",
    shell:
        "{HARNESS} --threads {threads} evaluate " + RUN_ARGS + " > {log} 2>&1"


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
