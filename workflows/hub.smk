# The hub for offline compute nodes: each hub item a paper-scale job reads (a model, a dataset, an eval suite's
# task datasets) is fetched once on the head node into the hub cache (configs/cluster/<c>.yaml hub_cache) at its
# pinned commit. The marker's name holds the commit (harness/hub.py), so a new pin re-runs the jobs that read it;
# runs without hub items have no such input and their DAG is unchanged.


rule fetch_hub:
    output:
        "results/hub/{kind}/{item}.json",
    wildcard_constraints:
        kind="models|datasets|eval",
        item=r"[^/]+",
    localrule: True
    log:
        "results/hub/{kind}/{item}.log",
    shell:
        "{HARNESS} fetch --marker {output} > {log} 2>&1"
