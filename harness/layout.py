"""Where everything lives: the checkout's config trees, the results/ tree, and the names of the files
that pass from one job to the next.

This module is the contract between a file's writer and its readers (Snakemake rules, stages,
rewards, trackers), so it sits below all of them and imports nothing of the harness. Paths under
results/ are relative to the working directory (Snakemake's `--directory`, the checkout by default).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The checkout: configs/ and papers/ are read from here."""
CONFIGS = ROOT / "configs"
PAPERS = ROOT / "papers"

RESULTS = "results"
WORLD = f"{RESULTS}/world"
RUNS = f"{RESULTS}/runs"
REPORTS = f"{RESULTS}/reports"
REUSE = f"{RESULTS}/reuse"
"""Finished jobs by content key (harness/reuse.py): one JSON file per key, naming the folder that holds the outputs."""

# ------------------------------------------------------------------ files a stage writes in its folder

STAGE_SUMMARY = "train.json"
"""Written last by every stage kind: its presence means the stage is complete."""
MODEL = "model"
"""The stage's model folder: the next policy, or a scorer that later stages' rewards read."""
CHECKPOINTS = "checkpoints"
CHECKPOINT_TAG = "fingerprint.txt"
"""Inside CHECKPOINTS: the fingerprint of the job that wrote them (another config starts afresh)."""
CHECKPOINT_DONE = "complete.json"
"""Inside each CHECKPOINTS/checkpoint-<N>: written once every process saved all of it (a checkpoint without it was
interrupted mid-write and is never resumed from)."""
SNAPSHOTS = "snapshots"
"""Models saved during training for evaluation (snapshots/step<N>/)."""
SAMPLES_FILE = "samples.jsonl"
"""A stage that makes samples (generate): every prompt, its gold answer, completions and scores."""
PAIRS_FILE = "pairs.jsonl"
"""Beside SAMPLES_FILE: one (chosen, rejected) pair per prompt whose samples scored differently."""
MIXTURE_FILE = "mixture.json"
"""Inside the MODEL folder of a reward-model mixture: its groups and their score statistics."""
STEP_SCORER_FILE = "prm.json"
"""Inside the MODEL folder of a process reward model: how completions were cut into steps."""
REWARD_STATE_FILE = "reward_state.json"
"""Inside a GRPO checkpoint: the memory of stateful rewards."""
SCORERS = {
    "sequence": "one reward model",
    "mixture": "a mixture of reward models (one per labeler group)",
    "steps": "a process reward model",
}
"""What a scorer-making stage can leave in its MODEL folder, by the name rewards ask for it: a sequence
classifier (one score per completion), a mixture of them (with MIXTURE_FILE), or a token classifier
scoring each step (with STEP_SCORER_FILE)."""
SUBFIT_DONE = "done.json"
"""Inside each sub-fit folder of a reward-model mixture: written when that fit is complete."""

# ------------------------------------------------------------------ the world and evaluations

PRETRAIN_SUMMARY = "pretrain.json"
"""Written last in a toy model's folder by `harness world model`."""
SOURCE_FILE = "source.json"
"""Written last in a packaged model's folder by `harness world convert`."""
METRICS_FILE = "metrics.json"
"""An evaluation's metrics and protocol (harness/evaluation/results.py reads it)."""
EVAL_SAMPLES_FILE = "samples.jsonl"
JOBS_FILE = "jobs.jsonl"
"""SLURM job ids of a job, in its `slurm/` folder (harness/launch.py)."""
TRACKED_FILE = "tracked.json"
LEADERBOARD_FILE = "leaderboard.json"


@dataclass(frozen=True)
class Run:
    """One (paper, scale, variant, seed): one MLflow run, one directory of results."""

    paper: str
    scale: str
    variant: str
    seed: int

    @property
    def dir(self) -> str:
        return f"{RUNS}/{self.paper}/{self.scale}/{self.variant}/seed{self.seed}"

    @property
    def key(self) -> str:
        return f"{self.paper}/{self.scale}/{self.variant}/seed{self.seed}"


def data_dir(dataset: str) -> str:
    return f"{WORLD}/data/{dataset}"


def tokenizer_dir(dataset: str) -> str:
    return f"{WORLD}/tokenizers/{dataset}"


def model_dir(model: str) -> str:
    return f"{WORLD}/models/{model}"


def stage_dir(run: Run, i: int) -> str:
    return f"{run.dir}/stage{i}"


def stage_summary(run: Run, i: int) -> str:
    return f"{stage_dir(run, i)}/{STAGE_SUMMARY}"


def stage_model(run: Run, i: int) -> str:
    return f"{stage_dir(run, i)}/{MODEL}"


def eval_file(run: Run) -> str:
    return f"{run.dir}/eval/{METRICS_FILE}"


def checkpoint_eval_file(run: Run, stage: int, step: int) -> str:
    return f"{stage_dir(run, stage)}/evals/step{step}/{METRICS_FILE}"


def snapshot_dir(run: Run, stage: int, step: int) -> str:
    """The model saved at `step` of a stage for evaluation during training."""
    return f"{stage_dir(run, stage)}/{SNAPSHOTS}/step{step}"


def tracked_file(run: Run) -> str:
    return f"{run.dir}/{TRACKED_FILE}"


def leaderboard_file(paper: str, scale: str) -> str:
    return f"{RUNS}/{paper}/{scale}/{LEADERBOARD_FILE}"


def leaderboard_files(results: Path) -> list[Path]:
    """Every leaderboard under a results folder (any paper, any scale), in path order."""
    return sorted(Path(results).glob(f"runs/*/*/{LEADERBOARD_FILE}"))


def report_page(paper: str, scale: str) -> str:
    return f"{REPORTS}/{paper}-{scale}.html"


def report_plots(paper: str, scale: str) -> dict[str, str]:
    return {name: f"{REPORTS}/{paper}-{scale}/{name}.png" for name in ("passk", "training")}


def write_atomic(path: Path | str, text: str) -> None:
    """Write `text` to `path` so that a reader sees the old file or the whole new one, never a part: a job
    killed mid-write (preemption, time limit) leaves no half-written file for a later job to take as complete.

    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "a.json"
    >>> write_atomic(f, "{}"); f.read_text(), sorted(p.name for p in f.parent.iterdir())
    ('{}', ['a.json'])
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
