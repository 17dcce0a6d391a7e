"""Sums to work out, with or without a calculator: the toy world of the `calculator` environment.

The prompt is a sum of `min_operands`..`max_operands` integers from min_value..max_value, the answer its value;
the solution is either the answer alone or a demonstration of the tool (harness/environments/calculator.py: the
call, the environment's observation, the final answer, in exactly that environment's format):

    12+34+56+78=   ->   180                          (direct)
    12+34+56+78=   ->   <12+34+56+78>=180;180        (the tool, in a share `tool_share` of the rows)

Rows are `{"id", "prompt", "answer", "solution"}`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from harness.environments.calculator import MAX_EXPRESSION_CHARS, Calculator, call_text, observation_text

ENVIRONMENT = "calculator"
STOPS = Calculator.stop


@dataclass
class CalculatorSpec:
    """Sums of `min_operands`..`max_operands` integers from min_value..max_value."""

    min_operands: int = 4
    max_operands: int = 4
    min_value: int = 10
    max_value: int = 99
    tool_share: float = 0.2
    """Fraction of rows whose solution demonstrates the calculator rather than answering directly."""
    n_train: int = 500
    n_pool: int = 500
    n_test: int = 200
    n_pretrain: int = 6000
    seed: int = 0


def solution(operands: list[int], tool: bool) -> str:
    """What follows the prompt: the sum, or the call of the calculator, its answer and the sum.

    >>> solution([12, 34], tool=False), solution([12, 34], tool=True)
    ('46', '<12+34>=46;46')
    """
    total = sum(operands)
    return (call_text("+".join(map(str, operands))) + observation_text(total) if tool else "") + str(total)


def check_spec(spec: CalculatorSpec) -> None:
    if not 2 <= spec.min_operands <= spec.max_operands <= 10:
        raise ValueError(f"calculator: need 2 <= min_operands <= max_operands <= 10, "
                         f"got {spec.min_operands}, {spec.max_operands}")  # fmt: skip
    if not 0 <= spec.min_value < spec.max_value <= 10**6:
        raise ValueError(f"calculator: need 0 <= min_value < max_value <= 1e6, got {spec.min_value}, {spec.max_value}")
    longest = spec.max_operands * (len(str(spec.max_value)) + 1) - 1
    if longest > MAX_EXPRESSION_CHARS:
        raise ValueError(f"calculator: a sum of {spec.max_operands} numbers up to {spec.max_value} takes {longest} "
                         f"characters, more than the environment's {MAX_EXPRESSION_CHARS}")  # fmt: skip
    if not 0.0 <= spec.tool_share <= 1.0:
        raise ValueError(f"calculator.tool_share: a fraction in [0, 1], got {spec.tool_share}")


def make_splits(spec: CalculatorSpec) -> dict[str, list[dict]]:
    """Disjoint splits (no prompt in two of them), deterministic under `spec.seed`, held-out ones first."""
    check_spec(spec)
    sizes = {"test": spec.n_test, "train": spec.n_train, "pool": spec.n_pool, "pretrain": spec.n_pretrain}
    rng, style, seen, splits = random.Random(spec.seed), random.Random(f"style-{spec.seed}"), set(), {}
    for name, size in sizes.items():
        rows, tries = [], 0
        while len(rows) < size:
            tries += 1
            if tries > 100 * (size + 10):
                raise ValueError(f"calculator: could not draw {size} distinct {name} sums; widen the spec")
            operands = [rng.randint(spec.min_value, spec.max_value)
                        for _ in range(rng.randint(spec.min_operands, spec.max_operands))]  # fmt: skip
            prompt = "+".join(map(str, operands)) + "="
            if prompt in seen:
                continue
            seen.add(prompt)
            tool = style.random() < spec.tool_share
            rows.append({"id": len(rows), "prompt": prompt, "answer": str(sum(operands)),
                         "solution": solution(operands, tool)})  # fmt: skip
        splits[name] = rows
    return splits


def tokenizer_text(row: dict) -> str:
    """What the dataset's tokenizer learns from a pretrain row (the sum and its solution)."""
    return row["prompt"] + row["solution"]
