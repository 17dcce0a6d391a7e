"""The process_reward_model stage: a per-step correctness classifier (a PRM) trained on a generate stage's samples.

TRL no longer ships a PRM trainer (PRMTrainer left `trl.experimental` in 2026), so this is transformers'
Trainer on a token-classification head with two labels, started from the stage's policy. Each sampled
completion is cut into steps after every `step_separator`; a registered step labeler says which steps are
right; the model learns, at the last token of each step, p(step right | prompt, steps so far). The
`process_reward` reward (harness/rewards/process.py) reads it back with the same encoding.

Labelers (the process supervision; Easy-to-Hard labels easy problems only, through the stage's `dataset`):
  running_total  scratchpad worlds: step t is right when its number is the t-th running total of the
                 problem and every earlier step was right (the first error makes the rest wrong, as in
                 PRM800K's convention);
  final_answer   every step carries the outcome (the completion's final answer is right): outcome
                 supervision spread over the steps, for worlds without step references.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.registry import Registry

STEP_LABELERS: Registry = Registry("step labeler")


@STEP_LABELERS.register("running_total")
def running_total(prompt: str, steps: list[str], answer: str) -> list[bool]:
    """Each step checked against the problem's running totals; wrong from the first error on.

    >>> running_total("12+34+5=", ["46;", "51"], "51"), running_total("12+34+5=", ["47;", "52"], "52")
    ([True, True], [False, False])
    >>> running_total("12+34+5=", ["46;", "50"], "51"), running_total("12+34+5=", ["46;", "51;", "7"], "51")
    ([True, False], [True, True, False])
    """
    from harness.grader import extract_answer
    from harness.toy.tasks import running_totals

    totals, out, ok = running_totals(prompt), [], True
    for t, step in enumerate(steps):
        ok = ok and t < len(totals) and extract_answer(step) == str(totals[t])
        out.append(ok)
    return out


@STEP_LABELERS.register("final_answer")
def final_answer(prompt: str, steps: list[str], answer: str) -> list[bool]:
    """Every step labeled with whether the completion's final answer is right.

    >>> final_answer("2+2=", ["1;", "4"], "4"), final_answer("2+2=", ["4;", "5"], "4")
    ([True, True], [False, False])
    """
    from harness.grader import is_correct

    if answer is None:
        raise ValueError(
            "step_labels final_answer needs each sample's gold answer; its generate stage read unlabeled rows"
        )
    return [is_correct("".join(steps), answer)] * len(steps)


final_answer.needs_answer = True  # refused after a generate stage on the unlabeled pool (harness.checks)


def split_steps(completion: str, separator: str) -> list[str]:
    """The steps of a completion, each keeping the separator that ends it; blank pieces dropped.

    >>> split_steps("46;51", ";"), split_steps("a\\n\\nb\\n\\n", "\\n\\n"), split_steps("  ", ";")
    (['46;', '51'], ['a\\n\\n', 'b\\n\\n'], [])
    """
    parts = completion.split(separator)
    steps = [p + separator for p in parts[:-1]] + [parts[-1]]
    return [s for s in steps if s.strip() and s.strip() != separator.strip()]


def encode(tokenizer, prompt: str, steps: list[str]) -> tuple[list[int], list[int]]:
    """Token ids of prompt + steps (each tokenized on its own, so step ends fall on token boundaries) and the
    index of each step's last token."""
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ends = []
    for step in steps:
        ids = ids + tokenizer(step, add_special_tokens=False)["input_ids"]
        ends.append(len(ids) - 1)
    return ids, ends


def step_examples(samples: list[dict], labeler: str, separator: str, tokenizer) -> list[dict]:
    """One training example per distinct (prompt, completion) with at least one step: input ids and a label
    (1 right, 0 wrong) at each step's last token, -100 elsewhere."""
    label = STEP_LABELERS.get(labeler)
    out = []
    for s in samples:
        for completion in dict.fromkeys(s["completions"]):
            steps = split_steps(completion, separator)
            if not steps:
                continue
            ids, ends = encode(tokenizer, s["prompt"], steps)
            labels = [-100] * len(ids)
            for end, ok in zip(ends, label(s["prompt"], steps, s["answer"]), strict=True):
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


def read_samples(folder: str | Path) -> list[dict]:
    from harness.generate import SAMPLES_FILE

    file = Path(folder) / SAMPLES_FILE
    rows = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
    if rows and "answer" not in rows[0]:
        raise ValueError(
            f"{file}: samples carry no `answer` (written before step labels existed); rerun the generate stage"
        )
    return rows


def build_prm(stage, model_path: str, generate_dir: str, common: dict, tokenizer):
    """transformers' Trainer on a two-label token-classification head over the stage's step examples."""
    import datasets
    from transformers import AutoModelForTokenClassification, Trainer, TrainingArguments

    a = stage.args
    examples = step_examples(read_samples(generate_dir), a["step_labels"], a["step_separator"], tokenizer)
    if not examples:
        raise ValueError(
            f"{generate_dir}: no completion has a step (separator {a['step_separator']!r}); nothing to train on"
        )
    right = sum(x == 1 for e in examples for x in e["labels"])
    total = sum(x != -100 for e in examples for x in e["labels"])
    print(
        f"process reward model: {len(examples)} completions, {total} steps, {right / total:.2f} labeled right",
        flush=True,
    )
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    model = AutoModelForTokenClassification.from_pretrained(model_path, num_labels=2)
    model.config.pad_token_id = tokenizer.pad_token_id
    return Trainer(model=model, args=TrainingArguments(**common), train_dataset=datasets.Dataset.from_list(examples),
                   data_collator=StepCollator(tokenizer.pad_token_id), processing_class=tokenizer)  # fmt: skip
