"""What a stage kind is: a declaration that config checks and the planner read without importing torch,
and the job a stage runs as.

A kind declares its hyper-parameters (a dataclass), what its rows are (`reads`), what it leaves for later
stages (`makes`), which optional parts of a stage it takes (rewards, an RL objective, a preference loss),
checks of its own, and an entry point `module:function` imported only when a stage of that kind runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.config.components import DatasetConfig
    from harness.config.schema import Stage

# What a stage's rows are (`reads`).
SPLIT = "split"
"""A dataset split (train / pool / mixture), reshaped by the stage's data_args."""
SAMPLES = "samples"
"""The samples (with their scores and gold answers) of the latest earlier stage that makes samples."""
PAIRS = "pairs"
"""The (chosen, rejected) pairs of the latest earlier stage that makes samples."""

# What a stage leaves for later stages (`makes`).
POLICY = "policy"
"""Its model is the next policy (the stages after it, and the evaluation, start from it)."""
SCORER = "scorer"
"""Its model is a scorer that later stages' rewards read (harness.layout.SCORERS); the policy is unchanged."""
DATA = "data"
"""Samples and pairs (harness.layout.SAMPLES_FILE, PAIRS_FILE); the policy is unchanged."""


UPSTREAM_SAMPLES = "pairs"
"""StageJob.upstream key: the folder of the latest earlier stage that made samples and pairs."""
UPSTREAM_SCORER = "reward_model"
"""StageJob.upstream key: the model folder of the scorer the stage's rewards read. Both names are hashed into
job fingerprints (harness.plan.Plan.stage_fingerprint): renaming them would make every result stale."""


@dataclass(frozen=True)
class StageKind:
    name: str
    args: type
    """Its hyper-parameters: a dataclass whose defaults the scale's `trainers.<name>` and the stage's `args`
    override; fields marked with harness.stages.args.ours are interpreted here, the rest go to TRL."""
    reads: str
    """SPLIT, SAMPLES or PAIRS."""
    makes: str
    """POLICY, SCORER or DATA."""
    entry: str
    """`module:function`: run(job: StageJob) -> summary dict (also written to the stage's train.json)."""
    rewards: str = "none"
    """`required` (at least one reward) or `none` (a stage of this kind takes no rewards)."""
    rewards_role: str = "reward"
    """How a refusal names what its rewards are for."""
    objective: bool = False
    """Takes an RL objective (advantage, policy loss, aggregation, aux terms, expert mix)."""
    preference_loss: bool = False
    """Takes a registered preference loss (harness/algorithms/preference.py)."""
    environment: bool = False
    """Runs multi-turn episodes: needs a registered environment (harness/environments/); other kinds take none."""
    labeled_rows: bool = False
    """Needs the gold answer on every row: data: train only."""
    scorers: tuple[str, ...] = ()
    """With makes=SCORER: the scorers (harness.layout.SCORERS) it can make ..."""
    scorer_of: Callable[[dict], str] | None = None
    """... and which one its merged args make (None: the first)."""
    check_args: Callable[[dict], None] | None = None
    """Checks of its merged args beyond their types; raises harness.config.errors.Invalid (key inside args)."""
    check_source: Callable[[dict, Any], None] | None = None
    """With reads SAMPLES or PAIRS: checks its args against the stage it reads from (raises Invalid)."""
    trl_config: str | None = None
    """`module:Class` of the TRL (or transformers) config its args go to: any field of it may be set in a stage's
    `args` beside the typed ones (harness/stages/trl_fields.py); None: the typed args only."""
    memory: Callable[[dict, Any], dict] | None = None
    """(merged args, objective) -> what one process holds per step, for the memory plan (harness/memory.py):
    `samples` (None, `rollouts`: sampled while training, `offline`: a sampling stage), `prompt` (the dataset's
    prompt adds to `completion_tokens`), `completion_tokens`, `sequences_per_example`, `reference`, `head`
    (`vocab`, `fused` log-probs, `score`), `vocab_mean`, `checkpointing_default`, `generation_batch`.
    None: a trainer on sequences of `max_length` tokens (TRL's default 1024) with a vocabulary head."""
    summary_numbers: tuple[str, ...] = ()
    """Numbers of its train.json logged once per stage (a stage without optimizer steps has no log history)."""

    @property
    def reads_generated(self) -> bool:
        """Trains on what an earlier stage made (`data: generated`), not on a dataset split."""
        return self.reads != SPLIT

    def scorer(self, args: dict) -> str | None:
        """The scorer a stage of this kind with these merged args makes (None unless makes=SCORER)."""
        if self.makes != SCORER:
            return None
        return self.scorer_of(args) if self.scorer_of else self.scorers[0]

    def run(self, job: StageJob) -> dict:
        module, function = self.entry.split(":")
        return getattr(import_module(module), function)(job)


@dataclass
class StageJob:
    """One stage of one run, as its entry point receives it."""

    stage: Stage
    model: str
    """The policy the stage starts from: a folder (a hub model's snapshot in the hub cache when run offline,
    harness.offline.offline_stage), or a hub id."""
    dataset: DatasetConfig
    """The dataset it reads rows from (the stage's own `dataset`, else the scale's)."""
    data_dir: Path | None
    """The generated dataset's folder, or a hub dataset's snapshot in the hub cache (harness.offline.offline_stage);
    None for a stage that reads generated data."""
    seed: int
    dir: Path
    """The stage's folder (harness.layout.stage_dir)."""
    fingerprint: str
    """The job's fingerprint: checkpoints written under another one are discarded."""
    snapshot_steps: list[int] = field(default_factory=list)
    """Steps whose model is saved for evaluation during training (harness.plan.Plan.snapshot_steps)."""
    models: dict[str, str] = field(default_factory=dict)
    """The model configs its rewards read (a judge's `model`) -> where each lies: a folder built here, a hub id, or
    that hub model's snapshot in the hub cache when run offline (harness.offline.offline_stage)."""
    upstream: dict[str, str] = field(default_factory=dict)
    """What it reads from earlier stages (harness.plan.Plan.upstream): UPSTREAM_SAMPLES (the folder of the stage
    that made its samples), UPSTREAM_SCORER (the scorer its rewards read)."""
    corpus: Path | None = None
    """The BM25 index folder of the dataset's corpus (paper scale: harness.offline.offline_stage, harness/corpora.py);
    None: a generated dataset's corpus.jsonl beside its splits, if any."""
