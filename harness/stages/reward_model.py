"""The reward_model stage kind: a scalar head trained on the pairs of the latest stage that made samples
(TRL's RewardTrainer), read by the `learned_reward` reward of later stages; with `num_groups`, a mixture
of reward models over latent labeler groups (harness/stages/reward_mixture.py), read by `worst_group_reward`."""

from __future__ import annotations

from dataclasses import dataclass

from harness.config.errors import Invalid
from harness.stages.args import TrainerArgs, ours
from harness.stages.kind import PAIRS, SCORER, UPSTREAM_SAMPLES, StageJob, StageKind


@dataclass
class RewardModelArgs(TrainerArgs):
    """Hyper-parameters of a reward_model stage (TRL's RewardConfig)."""

    num_groups: int | None = ours(None)
    """A mixture of this many reward models, one per latent group of labelers, fitted by hard EM over the
    labelers of the pairs (harness/stages/reward_mixture.py; MaxMin-RLHF); read by `worst_group_reward`.
    None: one reward model for everyone."""
    em_iterations: int | None = ours(None)
    """EM rounds (assign each labeler to the model that explains its pairs best, retrain) with num_groups;
    None: 3. Stops early when no labeler changes group."""


def check_args(args: dict) -> None:
    for name in ("num_groups", "em_iterations"):
        if args.get(name) is not None and args[name] < 1:
            raise Invalid(name, f"must be >= 1, got {args[name]}")


def mixture_groups(args: dict) -> int:
    """How many reward models the stage fits (1: a single model, not a mixture)."""
    return args.get("num_groups") or 1


def memory(args: dict, objective) -> dict:
    """For the memory plan: a chosen and a rejected sequence per pair through a scalar score head."""
    return {"sequences_per_example": 2, "head": "score"}


KIND = StageKind(
    "reward_model",
    RewardModelArgs,
    reads=PAIRS,
    makes=SCORER,
    entry="harness.stages.reward_model:run",
    scorers=("sequence", "mixture"),
    scorer_of=lambda args: "mixture" if mixture_groups(args) > 1 else "sequence",
    check_args=check_args,
    trl_config="trl:RewardConfig",
    memory=memory,
)


def build_trainer(job: StageJob, rows, ckpt_dir):
    from transformers import AutoTokenizer

    from harness.stages.generate import read_pairs
    from harness.stages.plumbing import common_args
    from harness.stages.trainers.reward import reward_trainer

    tokenizer = AutoTokenizer.from_pretrained(job.model)
    common = common_args(RewardModelArgs, job.stage.args, job.seed, ckpt_dir, job.stage.parallel)
    return reward_trainer(job.model, read_pairs(job.upstream[UPSTREAM_SAMPLES]), common, tokenizer)


def run(job: StageJob) -> dict:
    if mixture_groups(job.stage.args) > 1:
        from harness.stages.reward_mixture import train_mixture

        return train_mixture(job, RewardModelArgs)
    from harness.stages.plumbing import fit

    return fit(job, build_trainer)
