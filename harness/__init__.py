"""A declarative harness for reproducing RL-for-LLM papers: configs -> Snakemake -> TRL -> lm-eval -> MLflow."""

import os
from pathlib import Path

# Caches stay inside the project, never in the home directory (set before any HF library loads).
_CACHE = Path(__file__).resolve().parent.parent / ".cache"
os.environ.setdefault("HF_HOME", str(_CACHE / "huggingface"))
os.environ.setdefault("MPLCONFIGDIR", str(_CACHE / "matplotlib"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
