"""Typed schemas of a training stage: rewards, trainer hyper-parameters, the RL objective, data_args.

Part of harness/schema.py (which re-exports everything here); docstrings under fields are the
reference for bundle authors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING


@dataclass
class RewardSpec:
    """One reward term: a registered reward function, its weight and its factory arguments."""

    name: str = MISSING
    weight: float = 1.0
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainerArgs:
    """Hyper-parameters every stage kind has, passed to TRL's config under the same names (except OUR_ARGS
    in harness/train.py, which the harness interprets itself)."""

    learning_rate: float = 1e-5
    max_steps: int = 500
    global_batch_size: int | None = None
    """Completions (GRPO) or rows (SFT) per optimizer step over all GPUs; when set, per-device batch and
    gradient accumulation are derived from the GPUs granted (capped at max_per_device_batch_size)."""
    max_per_device_batch_size: int | None = None
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    warmup_steps: int = 0
    apply_chat_template: bool = False
    """Wrap each prompt in the model's chat template as a user turn, kept as text (chat models; evaluation
    suites have the same switch). SFT targets follow the turn, ended by the tokenizer's EOS."""
    save_steps: int = 50
    logging_steps: int = 10


@dataclass
class GRPOArgs(TrainerArgs):
    """Hyper-parameters of a GRPO stage (TRL's GRPOConfig)."""

    learning_rate: float = 1e-6
    num_generations: int = 8
    max_completion_length: int = 1024
    temperature: float = 1.0
    num_iterations: int = 1
    """Optimizer passes over each generated batch (>1: the ratio to the sampling policy moves off 1)."""
    generation_engine: str = "auto"
    """How completions are sampled: `hf` (transformers generate), `vllm` (TRL's vLLM in colocate mode;
    GPU and the `vllm` extra) or `auto` (vLLM when a GPU and vLLM are both present)."""


@dataclass
class SFTArgs(TrainerArgs):
    """Hyper-parameters of an SFT stage (TRL's SFTConfig)."""

    temporal_residual: float | None = None
    """Intuitive Fine-Tuning's lambda: answer tokens are read as a blend with the model's own expected token
    (harness/algorithms/intuition.py); None: plain SFT."""


@dataclass
class DPOArgs(TrainerArgs):
    """Hyper-parameters of a dpo stage (TRL's DPOConfig); pairs come from the latest generate stage."""

    learning_rate: float = 1e-6
    beta: float = 0.1
    """Strength of the pull towards the reference model (the stage's starting policy)."""
    loss_type: list[str] = field(default_factory=lambda: ["sigmoid"])
    """TRL's own DPO losses (sigmoid, ipo, hinge, robust, ...); unused when the stage names a `preference_loss`."""


@dataclass
class RewardModelArgs(TrainerArgs):
    """Hyper-parameters of a reward_model stage (TRL's RewardConfig): a scalar head trained on the latest
    generate stage's (chosen, rejected) pairs, read by the `learned_reward` reward of later stages."""

    num_groups: int | None = None
    """A mixture of this many reward models, one per latent group of labelers, fitted by hard EM over the
    labelers of the pairs (harness/reward_mixture.py; MaxMin-RLHF); read by `worst_group_reward`.
    None: one reward model for everyone."""
    em_iterations: int | None = None
    """EM rounds (assign each labeler to the model that explains its pairs best, retrain) with num_groups;
    None: 3. Stops early when no labeler changes group."""


@dataclass
class ProcessRewardModelArgs(TrainerArgs):
    """Hyper-parameters of a process_reward_model stage (harness/process_reward.py): a per-step correctness
    classifier trained on the latest generate stage's samples, read by the `process_reward` reward."""

    step_separator: str = "\n\n"
    """What ends a step of a completion (the toy scratchpad: `;`)."""
    step_labels: str = "final_answer"
    """The registered step labeler (harness/process_reward.py): `running_total` (scratchpad worlds: each
    step checked against the problem's running totals) or `final_answer` (every step carries the outcome)."""


@dataclass
class GenerateArgs:
    """A generate stage: sample completions from the current policy and label them with the stage's rewards
    (the judge: weighted sum = score). Writes the samples and one (best, worst) pair per prompt."""

    num_samples: int = 8
    """Completions per prompt."""
    temperature: float = 1.0
    max_new_tokens: int = 1024
    max_prompts: int | None = None
    """Use only the first `max_prompts` rows (after data_args); None: all."""
    batch_size: int = 64
    """Prompts per generate call."""
    apply_chat_template: bool = False
    generation_engine: str = "auto"
    """hf | vllm | auto (as in GRPOArgs)."""


@dataclass
class TrainerDefaults:
    grpo: GRPOArgs = field(default_factory=GRPOArgs)
    sft: SFTArgs = field(default_factory=SFTArgs)
    dpo: DPOArgs = field(default_factory=DPOArgs)
    reward_model: RewardModelArgs = field(default_factory=RewardModelArgs)
    generate: GenerateArgs = field(default_factory=GenerateArgs)
    process_reward_model: ProcessRewardModelArgs = field(default_factory=ProcessRewardModelArgs)


STAGE_ARGS: dict[str, type] = {"grpo": GRPOArgs, "sft": SFTArgs, "dpo": DPOArgs, "reward_model": RewardModelArgs,
                               "generate": GenerateArgs, "process_reward_model": ProcessRewardModelArgs}  # fmt: skip
SCORER_KINDS = ("reward_model", "process_reward_model")
"""Stage kinds whose output is a scorer that later stages' rewards read (not the next policy)."""
GENERATED_KINDS = ("dpo", *SCORER_KINDS)
"""Stage kinds that train on what the latest generate stage wrote (`data: generated`)."""
POLICY_KINDS = ("grpo", "sft", "dpo")
"""Stage kinds whose output model is the next policy; a reward_model stage's model is a scorer, a generate
stage's output is data."""
SPLITS = ("train", "pool", "mixture")
GENERATED = "generated"
"""`data:` of a dpo, reward_model or process_reward_model stage: what the latest earlier generate stage wrote
(its pairs; a process_reward_model stage reads its samples)."""


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
    top_entropy_quantile: float = 1.0
    """Train only on the completion tokens in this top fraction of entropy (1.0: every token)."""


@dataclass
class DataArgs:
    """How a stage's rows are drawn from the dataset's splits (applied in this order)."""

    limit: int | None = None
    """Keep only the first `limit` rows (1-shot training: 1)."""
    unlabeled: int | None = None
    """`mixture` only: pool rows (labels hidden) joining the labeled rows; None: the whole pool."""
    label_noise: float = 0.0
    """Fraction of labeled rows whose answer is replaced by a wrong one (seeded by `seed`)."""
    paraphrase: bool = False
    """Add a reworded twin of every row (same `pair`), always sampled into the same batch."""
    repeat: int = 1
    """Each row this many times (a tiny set must still fill a batch of distinct prompts)."""
    lowest_likelihood: float | None = None
    """Keep only this fraction of labeled rows: those whose reference solution (the answer where
    there is none) the stage's starting model finds least likely (mean log-probability per token)."""
    seed: int = 0


@dataclass
class StageConfig:
    """One training stage of a variant."""

    kind: str = MISSING
    """grpo | sft | dpo | reward_model | process_reward_model (trainers) or generate (sample and label)."""
    data: str = "train"
    """Rows: `train` (labeled), `pool` (unlabeled; label-free rewards only) or `mixture`
    (labeled rows plus pool rows with labels hidden, told apart by the `labeled` column); dpo and
    reward_model stages: `generated` (the latest earlier generate stage's pairs)."""
    dataset: str | None = None
    """A dataset (configs/datasets/) replacing the scale's for this stage (e.g. easy problems only)."""
    data_args: DataArgs = field(default_factory=DataArgs)
    rewards: list[RewardSpec] = field(default_factory=list)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    """grpo only: advantage estimator, policy loss, aggregation and auxiliary terms."""
    preference_loss: PieceSpec | None = None
    """dpo only: a registered preference loss (harness/algorithms/preference.py) instead of TRL's loss_type."""
    args: dict[str, Any] = field(default_factory=dict)
    """Overrides of this stage kind's hyper-parameters (checked against the kind's *Args above)."""
    resources: dict[str, Any] = field(default_factory=dict)
    """Overrides of the scale's `resources.train` for this stage (checked against Resources)."""
