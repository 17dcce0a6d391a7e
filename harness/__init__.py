"""A declarative harness for reproducing RL-for-LLM papers: configs -> Snakemake -> TRL -> lm-eval -> MLflow.

Layers, top to bottom; a module imports from its own layer and those below it, never above
(tests/test_architecture.py checks this order, and that there is no import cycle at all):

    cli                              the `harness` command (only __main__ imports it)
    plan, validate, reuse            configs -> runs, paths, job fingerprints: the Snakefile's API;
                                     what `harness validate` checks of a bundle (memory plan, bands);
                                     finished jobs taken by identical ones (content keys)
    reporting/                       leaderboards, verdicts, bands, HTML reports, MLflow; the commands reading them
    evaluation/                      lm-eval runs, sampling metrics, evaluation protocols
    config/read, config/resolve, config/load, config/stage_changes, config/checks, config/claims, config/constraints, config/selection,
    launch, memory, host_memory, hub, offline, corpora, pinning, fetching, serve
                                     resolving and checking bundles (they read the registries below), the
                                     README table of their ranges; what a run covers (papers, variants);
                                     SLURM via submitit; the memory plan; fetching the hub for offline
                                     compute nodes and reading its cache there, indexing search corpora,
                                     pinning items, the fetch command; the vLLM server job
    stages/                          the stage-kind registry, one module per kind, shared trainer plumbing
    config/ schemas, files           schema, stage, components, parallel, typed (YAML onto them), plain, errors;
                                     data files pinned by digest (a paper's own subset)
    rewards/, algorithms/            registries of reward functions and RL objective pieces
    world/, environments/            the CPU world: dataset generators, tokenizer, toy and packaged models;
                                     environments for multi-turn episodes (tools, search) and the episodes
    grader, device, layout, registry answer extraction, GPU/vLLM presence, file layout, the generic registry,
    sandbox                          running model-written code isolated (bubblewrap) and limited
"""

import os
import platform
from pathlib import Path

# Caches stay inside the project, never in the home directory (set before any HF library loads).
_CACHE = Path(__file__).resolve().parent.parent / ".cache"
os.environ.setdefault("HF_HOME", str(_CACHE / "huggingface"))
os.environ.setdefault("MPLCONFIGDIR", str(_CACHE / "matplotlib"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One x86 instruction set for CPU numerics, whatever the machine has (before torch loads): torch's own kernels, MKL
# (conditional numerical reproducibility) and oneDNN all pinned to AVX2. Left to pick AVX-512 where a CPU has it, the
# same toy base trained 2000 steps to greedy accuracy ~0.8 on one machine and ~0.7 on another (AVX2 only).
if platform.machine() in ("x86_64", "AMD64"):
    for _var, _isa in (("ATEN_CPU_CAPABILITY", "avx2"), ("MKL_CBWR", "AVX2"), ("DNNL_MAX_CPU_ISA", "AVX2")):
        os.environ.setdefault(_var, _isa)
