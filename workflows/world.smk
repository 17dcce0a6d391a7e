# The CPU world: generated datasets (+ their tokenizer), toy base models pre-trained from scratch, and
# real pretrained models that ship inside a Python package, converted once into a checkpoint.


rule build_dataset:
    output:
        expand("results/world/data/{{dataset}}/{split}.jsonl", split=("pretrain", "train", "pool", "test")),
        "results/world/tokenizers/{dataset}/tokenizer.json",
    params:
        fingerprint=per_job(lambda w: PLAN.dataset_fingerprint(w.dataset)),
    log:
        "results/world/logs/data-{dataset}.log",
    shell:
        "{HARNESS} world data {wildcards.dataset} > {log} 2>&1"


rule pretrain_model:
    input:
        per_job(lambda w: PLAN.pretrain_inputs(w.model)),
    output:
        "results/world/models/{model}/pretrain.json",
    params:
        fingerprint=per_job(lambda w: PLAN.model_fingerprint(w.model)),
    threads: 2  # a toy base trains on the threads its spec fixes (ToyModelSpec.threads, 2): keep the cores for it
    log:
        "results/world/logs/model-{model}.log",
    shell:
        "{HARNESS} --threads {threads} world model {wildcards.model} > {log} 2>&1"


rule convert_model:
    output:
        "results/world/models/{model}/source.json",
    params:
        source=per_job(lambda w: f"{PLAN.packaged_models()[w.model].package}/{PLAN.packaged_models()[w.model].file}"),
    log:
        "results/world/logs/convert-{model}.log",
    shell:
        "{HARNESS} world convert {wildcards.model} > {log} 2>&1"
