"""A declarative harness for reproducing RL-for-LLM papers: configs -> Snakemake -> TRL -> lm-eval -> MLflow.

Layers, each importing only from those below it (tests/test_architecture.py checks there is no cycle):

    cli, plan, launch          the `harness` command; configs -> runs, paths, job fingerprints; SLURM via submitit
    reporting/                 leaderboards, verdicts, HTML reports, MLflow
    evaluation/                lm-eval runs, sampling metrics, evaluation protocols
    stages/                    the stage-kind registry, one module per kind, shared trainer plumbing
    config/                    schemas, YAML loading, checks, fingerprints of resolved configs
    rewards/, algorithms/      registries of reward functions and RL objective pieces
    world/                     the CPU world: dataset generators, tokenizer, toy and packaged models
    grader, device, layout, registry   answer extraction, GPU/vLLM presence, file layout, the generic registry
"""

import os
from pathlib import Path

# Caches stay inside the project, never in the home directory (set before any HF library loads).
_CACHE = Path(__file__).resolve().parent.parent / ".cache"
os.environ.setdefault("HF_HOME", str(_CACHE / "huggingface"))
os.environ.setdefault("MPLCONFIGDIR", str(_CACHE / "matplotlib"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
