"""The dpo stage kind: preference optimisation on the pairs of the latest stage that made samples, with
TRL's DPOTrainer and its own `loss_type`, or a registered preference loss (harness/stages/trainers/dpo.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.config.typed import limited
from harness.stages.args import TrainerArgs
from harness.stages.kind import PAIRS, POLICY, UPSTREAM_SAMPLES, StageJob, StageKind


@dataclass
class DPOArgs(TrainerArgs):
    """Hyper-parameters of a dpo stage (TRL's DPOConfig); pairs come from the latest generate stage."""

    learning_rate: float = limited(1e-6, gt=0, le=1)
    beta: float = limited(0.1, gt=0)
    """Strength of the pull towards the reference model (the stage's starting policy)."""
    loss_type: list[str] = field(default_factory=lambda: ["sigmoid"])
    """TRL's own DPO losses (sigmoid, ipo, hinge, robust, ...); unused when the stage names a `preference_loss`."""


def memory(args: dict, objective) -> dict:
    """For the memory plan: a chosen and a rejected sequence per pair, and TRL's frozen reference model."""
    return {"sequences_per_example": 2, "reference": True}


KIND = StageKind(
    "dpo",
    DPOArgs,
    reads=PAIRS,
    makes=POLICY,
    entry="harness.stages.dpo:run",
    preference_loss=True,
    trl_config="trl:DPOConfig",
    memory=memory,
)


def build_trainer(job: StageJob, rows, ckpt_dir):
    """TRL's DPOTrainer with the stage's loss_type, or HarnessDPOTrainer with its preference_loss."""
    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from harness.stages.generate import read_pairs
    from harness.stages.plumbing import common_args
    from harness.stages.trainers.dpo import HarnessDPOTrainer

    stage, tokenizer = job.stage, AutoTokenizer.from_pretrained(job.model)
    pairs = read_pairs(job.upstream[UPSTREAM_SAMPLES])
    common = common_args(DPOArgs, stage.args, job.seed, ckpt_dir, stage.parallel)
    args = {k: v for k, v in common.items() if k != "loss_type"}
    if stage.preference_loss is None:
        cfg = DPOConfig(**args, loss_type=stage.args["loss_type"])
        return DPOTrainer(model=job.model, args=cfg, train_dataset=pairs, processing_class=tokenizer)
    gold = tokenizer(list(pairs["gold"]), add_special_tokens=False)["input_ids"]
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    pairs = pairs.add_column("gold_ids", [g + eos for g in gold])
    return HarnessDPOTrainer(model=job.model, args=DPOConfig(**args), train_dataset=pairs, processing_class=tokenizer,
                             preference_loss=stage.preference_loss)  # fmt: skip


def run(job: StageJob) -> dict:
    from harness.stages.plumbing import fit

    return fit(job, build_trainer)
