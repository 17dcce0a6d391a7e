"""Typed schemas of a training stage as a bundle writes it: its kind, data, rewards, RL objective and
data_args. A kind's hyper-parameters (`args`) are declared by the kind itself (harness/stages/).
Docstrings under fields are the reference for bundle authors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.config.typed import MISSING, limited


@dataclass
class RewardSpec:
    """One reward term: a registered reward function, its weight and its factory arguments."""

    name: str = MISSING
    weight: float = 1.0
    args: dict[str, Any] = field(default_factory=dict)
    gated_by: int | None = None
    """GRPO stages: the index of another reward of the stage; this term then counts only on completions that reward
    passes (>= 0.5) and is 0 elsewhere. Posterior-GRPO's process reward, paid for right answers only."""


SPLITS = ("train", "pool", "mixture")
"""What a stage that reads a dataset split trains on (see StageConfig.data)."""
GENERATED = "generated"
"""`data:` of a stage whose kind trains on what an earlier stage made (samples or pairs)."""


@dataclass
class PieceSpec:
    """A registered piece of the RL objective (harness/algorithms/) and its arguments."""

    name: str = MISSING
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class ObjectiveConfig:
    """How a GRPO stage turns rewards into a loss: advantage -> policy loss -> aggregation (+ aux terms).

    The defaults are GRPO as TRL ships it: group mean/std advantages, clipped surrogate with
    epsilon 0.2, loss averaged over the completion tokens of the whole batch.
    """

    advantage: PieceSpec = field(default_factory=lambda: PieceSpec(name="group_mean_std"))
    loss: PieceSpec = field(default_factory=lambda: PieceSpec(name="clipped_surrogate"))
    aggregation: str = "token_mean"
    """token_mean | sequence_mean | sequence_sum (see harness/algorithms/losses.py)."""
    aux: list[PieceSpec] = field(default_factory=list)
    """Terms added to the loss, e.g. entropy_bonus, entropy_band, kl_to_reference."""
    expert: PieceSpec | None = None
    """An SFT loss on each prompt's gold solution (the expert demonstration) mixed into the RL loss per
    sample by a registered expert mix (harness/algorithms/expert.py), e.g. scheduled_sft, accuracy_switch."""
    top_entropy_quantile: float = limited(1.0, gt=0, le=1)
    """Train only on the completion tokens in this top fraction of entropy (1.0: every token)."""
    online_filter: PieceSpec | None = None
    """Which prompt groups each step trains on, decided from their rewards as they are scored, the batch refilled
    with fresh prompts (harness/algorithms/filters.py: varied_groups is DAPO's dynamic sampling, pass_rate_band a
    difficulty curriculum). None: every sampled group."""
    masked_spans: list[list[str]] | None = None
    """[open, close] tag pairs: each span of the completion from an opening tag through its closing tag carries no
    loss (harness/algorithms/spans.py; SSRL's self-written `<information>`). None: every completion token."""


@dataclass
class DataArgs:
    """How a stage's rows are drawn from the dataset's splits (applied in this order)."""

    limit: int | None = limited(None, ge=1)
    """Keep only the first `limit` rows (1-shot training: 1)."""
    unlabeled: int | None = limited(None, ge=0)
    """`mixture` only: pool rows (labels hidden) joining the labeled rows; None: the whole pool."""
    label_noise: float = limited(0.0, ge=0, le=1)
    """Fraction of labeled rows whose answer is replaced by a wrong one (seeded by `seed`)."""
    paraphrase: bool = False
    """Add a reworded twin of every row (same `pair`), always sampled into the same batch."""
    repeat: int = limited(1, ge=1, le=10_000)
    """Each row this many times (a tiny set must still fill a batch of distinct prompts)."""
    lowest_likelihood: float | None = limited(None, gt=0, le=1)
    """Keep only this fraction of labeled rows: those whose reference solution (the answer where
    there is none) the stage's starting model finds least likely (mean log-probability per token)."""
    seed: int = limited(0, ge=0)
    solution_prefix: float | None = limited(None, gt=0, le=1)
    """Move this share of each row's reference solution steps (rounded down; never its last step) to the end of the
    prompt, after any curation, instruction and chat template: PrefixRL's off-policy prefix. The prefix is prompt,
    so no loss falls on it, and the reward reads the completion that continues it. None: prompts as they are."""
    prefix_separator: str | None = None
    """What ends a step of a solution for `solution_prefix` (toy scratchpads: `;`); None: a blank line."""


@dataclass
class StageConfig:
    """One training stage of a variant."""

    kind: str = MISSING
    """A registered stage kind (harness/stages/; `harness validate` lists them in its refusals)."""
    data: str = "train"
    """Rows: `train` (labeled), `pool` (unlabeled; label-free rewards only) or `mixture`
    (labeled rows plus pool rows with labels hidden, told apart by the `labeled` column); kinds that train
    on what an earlier stage made (dpo, reward_model, process_reward_model): `generated`."""
    dataset: str | None = None
    """A dataset (configs/datasets/) replacing the scale's for this stage (e.g. easy problems only)."""
    data_args: DataArgs = field(default_factory=DataArgs)
    rewards: list[RewardSpec] = field(default_factory=list)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    """grpo only: advantage estimator, policy loss, aggregation and auxiliary terms."""
    preference_loss: PieceSpec | None = None
    """dpo only: a registered preference loss (harness/algorithms/preference.py) instead of TRL's loss_type."""
    environment: PieceSpec | None = None
    """multiturn_grpo only: a registered environment (harness/environments/) and its arguments."""
    args: dict[str, Any] = field(default_factory=dict)
    """Overrides of this stage kind's hyper-parameters (checked against the kind's args, harness/stages/<kind>.py)."""
    resources: dict[str, Any] = field(default_factory=dict)
    """Overrides of the scale's `resources.train` for this stage (checked against Resources)."""
    parallel: dict[str, Any] = field(default_factory=dict)
    """Overrides of the scale's `parallel:` for this stage (checked against harness/config/parallel.py)."""


def data_args_problem(data: str, d: DataArgs) -> tuple[str, str] | None:
    """(key under data_args, why) for data_args that cannot apply to `data`, or None.

    Shared by config validation (which names the file) and harness.stages.data (called without one).
    """
    if d.label_noise and data == "pool":
        return "label_noise", "data: pool has no labels to corrupt (use train or mixture)"
    if d.lowest_likelihood is not None and d.repeat > 1:
        return "lowest_likelihood", "curates distinct rows: not with repeat > 1"
    if d.lowest_likelihood is not None and data != "train":
        return "lowest_likelihood", f"needs a reference answer on every row: data: train, not {data!r}"
    if d.solution_prefix is not None and data != "train":
        return "solution_prefix", f"needs a reference solution on every row: data: train, not {data!r}"
    if d.prefix_separator is not None and d.solution_prefix is None:
        return "prefix_separator", "only with solution_prefix"
    if d.prefix_separator == "":
        return "prefix_separator", "must not be empty"
    if d.unlabeled is not None and data != "mixture":
        return "unlabeled", f"only for data: mixture (this stage uses {data!r})"
    for name, least in (("limit", 1), ("unlabeled", 0), ("repeat", 1)):
        value = getattr(d, name)
        if value is not None and value < least:
            return name, f"must be at least {least}, got {value}"
    return None
