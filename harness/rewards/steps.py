"""Completions cut into steps, and the registered step labelers: the contract between the stage kind that
trains a process reward model (harness/stages/process_reward_model.py) and the `process_reward` reward that
reads it (harness/rewards/process.py), so both cut and encode steps the same way.

Labelers (the process supervision):
  running_total  scratchpad worlds: step t is right when its number is the t-th running total of the
                 problem and every earlier step was right (the first error makes the rest wrong, as in
                 PRM800K's convention);
  final_answer   every step carries the outcome (the completion's final answer is right): outcome
                 supervision spread over the steps, for worlds without step references; it needs the gold
                 answer of every sample (`needs_answer`);
  step_consistency  reference-free (SPARK's self-consistency): step t is right when its answer agrees with the
                 majority of the t-th steps of the prompt's samples, and every earlier step was right; it reads
                 the prompt's whole group of samples (`by_group`), no gold answer and no world-specific check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.grader import extract_answer, is_correct, majority_answer
from harness.registry import Registry
from harness.world.arithmetic import running_totals


@dataclass(frozen=True)
class StepLabeler:
    label: Callable[[str, list[str], str | None], list[bool]]
    """(prompt, steps, gold answer) -> whether each step is right."""
    needs_answer: bool = False
    """Needs each sample's gold answer (refused after a stage that sampled unlabeled rows)."""
    by_group: Callable[[list[list[str]]], object] | None = None
    """Builds the labeler's reference from the steps of all the prompt's samples; it is passed in place of the gold
    answer (None: the gold answer is)."""

    def __call__(self, prompt: str, steps: list[str], answer) -> list[bool]:
        return self.label(prompt, steps, answer)


STEP_LABELERS: Registry[StepLabeler] = Registry("step labeler")


def running_total(prompt: str, steps: list[str], answer: str | None) -> list[bool]:
    """Each step checked against the problem's running totals; wrong from the first error on.

    >>> running_total("12+34+5=", ["46;", "51"], "51"), running_total("12+34+5=", ["47;", "52"], "52")
    ([True, True], [False, False])
    >>> running_total("12+34+5=", ["46;", "50"], "51"), running_total("12+34+5=", ["46;", "51;", "7"], "51")
    ([True, False], [True, True, False])
    """
    totals, out, ok = running_totals(prompt), [], True
    for t, step in enumerate(steps):
        ok = ok and t < len(totals) and extract_answer(step) == str(totals[t])
        out.append(ok)
    return out


def final_answer(prompt: str, steps: list[str], answer: str | None) -> list[bool]:
    """Every step labeled with whether the completion's final answer is right.

    >>> final_answer("2+2=", ["1;", "4"], "4"), final_answer("2+2=", ["4;", "5"], "4")
    ([True, True], [False, False])
    """
    if answer is None:
        raise ValueError(
            "step_labels final_answer needs each sample's gold answer; its generate stage read unlabeled rows"
        )
    return [is_correct("".join(steps), answer)] * len(steps)


def step_majorities(group: list[list[str]]) -> list[str | None]:
    """The majority answer of each step position over a prompt's samples (None where no sample's step has one).

    >>> step_majorities([["46;", "51"], ["46;", "52"], ["47;", "51"]])
    ['46', '51']
    """
    width = max((len(steps) for steps in group), default=0)
    return [majority_answer([extract_answer(steps[t]) for steps in group if t < len(steps)]) for t in range(width)]


def step_consistency(prompt: str, steps: list[str], majorities: list[str | None]) -> list[bool]:
    """Each step checked against the majority of its position among the prompt's samples; wrong from the first
    disagreement on.

    >>> step_consistency("12+34+5=", ["46;", "51"], ["46", "51"]), step_consistency("12+34+5=", ["47;", "51"], ["46", "51"])
    ([True, True], [False, False])
    >>> step_consistency("1+2=", ["3", "4"], ["3"])  # a step no majority covers is not confirmed
    [True, False]
    """
    out, ok = [], True
    for t, step in enumerate(steps):
        ok = ok and t < len(majorities) and majorities[t] is not None and extract_answer(step) == majorities[t]
        out.append(ok)
    return out


STEP_LABELERS.register("running_total")(StepLabeler(running_total))
STEP_LABELERS.register("final_answer")(StepLabeler(final_answer, needs_answer=True))
STEP_LABELERS.register("step_consistency")(StepLabeler(step_consistency, by_group=step_majorities))


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
