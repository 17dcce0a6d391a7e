"""The process_reward_model stage kind: a per-step correctness classifier (a PRM) trained on the samples of
the latest stage that made samples.

TRL no longer ships a PRM trainer (PRMTrainer left `trl.experimental` in 2026), so this is transformers'
Trainer on a token-classification head with two labels, started from the stage's policy. Each sampled
completion is cut into steps after every `step_separator`; a registered step labeler (harness/rewards/steps.py)
says which steps are right; the model learns, at the last token of each step, p(step right | prompt, steps so
far). The `process_reward` reward (harness/rewards/process.py) reads it back with the same encoding.
Easy-to-Hard labels easy problems only, through the stage's `dataset`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from harness.config.errors import Invalid
from harness.layout import STEP_SCORER_FILE, write_atomic
from harness.rewards.steps import STEP_LABELERS, encode, split_steps
from harness.stages.args import TrainerArgs, ours
from harness.stages.kind import SAMPLES, SCORER, UPSTREAM_SAMPLES, StageJob, StageKind


@dataclass
class ProcessRewardModelArgs(TrainerArgs):
    """Hyper-parameters of a process_reward_model stage: a per-step correctness classifier trained on the
    latest generate stage's samples, read by the `process_reward` reward."""

    step_separator: str = ours("\n\n")
    """What ends a step of a completion (the toy scratchpad: `;`)."""
    step_labels: str = ours("final_answer")
    """The registered step labeler (harness/rewards/steps.py): `running_total` (scratchpad worlds: each
    step checked against the problem's running totals) or `final_answer` (every step carries the outcome)."""


def check_args(args: dict) -> None:
    if args["step_labels"] not in STEP_LABELERS:
        raise Invalid("step_labels", STEP_LABELERS.unknown_message(args["step_labels"]))
    if not args["step_separator"]:
        raise Invalid("step_separator", "must not be empty")


def check_source(args: dict, source) -> None:
    """Labels that need gold answers cannot come from samples of the unlabeled pool."""
    if STEP_LABELERS.get(args["step_labels"]).needs_answer and source.data == "pool":
        raise Invalid(
            "step_labels",
            f"{args['step_labels']!r} needs gold answers; the latest generate stage reads the unlabeled pool",
        )


def memory(args: dict, objective) -> dict:
    """For the memory plan: a two-label token head; transformers' Trainer does not checkpoint activations
    unless told to."""
    return {"head": "score", "checkpointing_default": False}


KIND = StageKind(
    "process_reward_model",
    ProcessRewardModelArgs,
    reads=SAMPLES,
    makes=SCORER,
    entry="harness.stages.process_reward_model:run",
    scorers=("steps",),
    check_args=check_args,
    check_source=check_source,
    trl_config="transformers:TrainingArguments",
    memory=memory,
)


def step_examples(samples: list[dict], labeler: str, separator: str, tokenizer) -> list[dict]:
    """One training example per distinct (prompt, completion) with at least one step: input ids and a label
    (1 right, 0 wrong) at each step's last token, -100 elsewhere."""
    label = STEP_LABELERS.get(labeler)
    out = []
    for s in samples:
        reference = s["answer"]
        if label.by_group:  # from every sample of the prompt, repeats counted
            reference = label.by_group([split_steps(c, separator) for c in s["completions"]])
        for completion in dict.fromkeys(s["completions"]):
            steps = split_steps(completion, separator)
            if not steps:
                continue
            ids, ends = encode(tokenizer, s["prompt"], steps)
            labels = [-100] * len(ids)
            for end, ok in zip(ends, label(s["prompt"], steps, reference), strict=True):
                labels[end] = int(ok)
            out.append({"input_ids": ids, "labels": labels})
    return out


class StepCollator:
    """Right-pads input ids (pad token) and labels (-100); builds the attention mask."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad = pad_token_id

    def __call__(self, examples: list[dict]) -> dict:
        import torch

        width = max(len(e["input_ids"]) for e in examples)
        ids = [e["input_ids"] + [self.pad] * (width - len(e["input_ids"])) for e in examples]
        labels = [e["labels"] + [-100] * (width - len(e["labels"])) for e in examples]
        mask = [[1] * len(e["input_ids"]) + [0] * (width - len(e["input_ids"])) for e in examples]
        return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "attention_mask": torch.tensor(mask)}


def build_trainer(job: StageJob, rows, ckpt_dir):
    """transformers' Trainer on a two-label token-classification head over the stage's step examples."""
    import datasets
    from transformers import AutoModelForTokenClassification, AutoTokenizer, Trainer, TrainingArguments

    from harness.stages.generate import read_samples
    from harness.stages.plumbing import common_args

    a, source = job.stage.args, job.upstream[UPSTREAM_SAMPLES]
    tokenizer = AutoTokenizer.from_pretrained(job.model)
    common = common_args(ProcessRewardModelArgs, a, job.seed, ckpt_dir, job.stage.parallel)
    load = common.pop("model_init_kwargs", {})  # TrainingArguments has no such field: loaded here
    examples = step_examples(read_samples(source), a["step_labels"], a["step_separator"], tokenizer)
    if not examples:
        raise ValueError(f"{source}: no completion has a step (separator {a['step_separator']!r}); nothing to train on")
    right = sum(x == 1 for e in examples for x in e["labels"])
    total = sum(x != -100 for e in examples for x in e["labels"])
    print(
        f"process reward model: {len(examples)} completions, {total} steps, {right / total:.2f} labeled right",
        flush=True,
    )
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    model = AutoModelForTokenClassification.from_pretrained(job.model, num_labels=2, **load)
    model.config.pad_token_id = tokenizer.pad_token_id
    return Trainer(model=model, args=TrainingArguments(**common), train_dataset=datasets.Dataset.from_list(examples),
                   data_collator=StepCollator(tokenizer.pad_token_id), processing_class=tokenizer)  # fmt: skip


def run(job: StageJob) -> dict:
    from harness.stages.plumbing import fit

    def write_step_format(model_dir: Path) -> None:  # how the process_reward reward must cut completions
        prm = {k: job.stage.args[k] for k in ("step_separator", "step_labels")}
        write_atomic(model_dir / STEP_SCORER_FILE, json.dumps(prm))

    return fit(job, build_trainer, after_save=write_step_format)
