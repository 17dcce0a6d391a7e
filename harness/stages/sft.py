"""The sft stage kind: supervised fine-tuning on each row's gold solution (TRL's SFTTrainer), with Intuitive
Fine-Tuning's temporal residual when asked for (harness/stages/trainers/sft.py)."""

from __future__ import annotations

from dataclasses import dataclass

from harness.stages.args import TrainerArgs, ours
from harness.stages.kind import POLICY, SPLIT, StageJob, StageKind


@dataclass
class SFTArgs(TrainerArgs):
    """Hyper-parameters of an SFT stage (TRL's SFTConfig)."""

    temporal_residual: float | None = ours(None)
    """Intuitive Fine-Tuning's lambda: answer tokens are read as a blend with the model's own expected token
    (harness/algorithms/intuition.py); None: plain SFT."""


KIND = StageKind(
    "sft",
    SFTArgs,
    reads=SPLIT,
    makes=POLICY,
    entry="harness.stages.sft:run",
    labeled_rows=True,
    trl_config="trl:SFTConfig",
)


def build_trainer(job: StageJob, rows, ckpt_dir):
    """HarnessSFTTrainer on the rows' solutions (the answer where a dataset has none), loss on the target only."""
    from transformers import AutoTokenizer
    from trl import SFTConfig

    from harness.stages.plumbing import common_args
    from harness.stages.trainers.sft import HarnessSFTTrainer

    target = "solution" if "solution" in rows.column_names else "answer"  # scratchpad worlds show the steps
    rows = rows.rename_column(target, "completion")
    tokenizer = AutoTokenizer.from_pretrained(job.model)
    if isinstance(rows[0]["prompt"], str):  # chat prompts: TRL renders the template around both
        rows = tokenized_apart(rows, tokenizer)
    common = common_args(SFTArgs, job.stage.args, job.seed, ckpt_dir, job.stage.parallel)
    cfg = SFTConfig(**common, completion_only_loss=True)
    return HarnessSFTTrainer(model=job.model, args=cfg, train_dataset=rows, processing_class=tokenizer,
                             temporal_residual=job.stage.args.get("temporal_residual"))  # fmt: skip


def tokenized_apart(rows, tokenizer):
    """`input_ids` and `completion_mask` of each plain-text row: the prompt tokenized alone, then the completion
    alone and EOS, as the model meets them (it reads the prompt's own tokens and writes after them; the toy worlds
    pre-train so too). TRL tokenizes the joined text, so where tokens merge across the boundary (a tool world's `=`
    and `<` into `=<`) it would train on a context the model never sees."""

    def encode(row: dict) -> dict:
        prompt = tokenizer(row["prompt"])["input_ids"]
        completion = tokenizer(row["completion"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        return {"input_ids": prompt + completion, "completion_mask": [0] * len(prompt) + [1] * len(completion)}

    return rows.map(encode, remove_columns=rows.column_names)


def run(job: StageJob) -> dict:
    from harness.stages.plumbing import fit, split_rows

    return fit(job, build_trainer, split_rows(job))
