"""Synthetic arithmetic problems, split into pretrain / train (labeled) / pool (unlabeled) / test.

Every problem is unique across splits, so held-out accuracy measures generalisation, not recall.
Rows are `{"id", "prompt", "answer", "solution"}`; the prompt is the bare expression (`"12+34="`).
The solution is what the toy model learns to write after the prompt: the answer alone, or with
`scratchpad` the running total after each operation (`"12+34+5="` -> `"46;51"`), whose last
number is the answer (harness.grader reads it).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.world.splits import write_rows

SEPARATOR = ";"
"""Between the scratchpad's running totals (never a digit or an operator, so the grader's last number is the answer)."""


@dataclass
class ArithmeticSpec:
    """Synthetic arithmetic problems `a+b-c=`; difficulty grows with operands and value range."""

    min_operands: int = 2
    max_operands: int = 2
    max_value: int = 99
    operators: list[str] = field(default_factory=lambda: ["+"])
    n_train: int = 500
    """Labeled split (gold answers used as reward)."""
    n_pool: int = 500
    """Unlabeled split (answers kept on disk for analysis, never given to a label-free reward)."""
    n_test: int = 200
    """Held-out evaluation split."""
    n_pretrain: int = 8000
    """Pre-training corpus for the toy model, disjoint from the other splits."""
    scratchpad: bool = False
    """Solutions show the running total after each operation (`12+34+5=` -> `46;51`): a reasoning
    prefix before the final answer. False: the solution is the answer alone."""
    scratchpad_share: float | None = None
    """With `scratchpad`, the fraction of rows (drawn per row) whose solution shows the running totals; the
    others give the answer alone, so a model pre-trained on them answers in either style. None: every row."""
    seed: int = 0


def problem(rng: random.Random, spec: ArithmeticSpec) -> tuple[str, str]:
    """One expression and its value, operands drawn uniformly from 0..max_value."""
    n = rng.randint(spec.min_operands, spec.max_operands)
    terms = [str(rng.randint(0, spec.max_value))]
    for _ in range(n - 1):
        terms += [rng.choice(spec.operators), str(rng.randint(0, spec.max_value))]
    expr = "".join(terms)
    return expr + "=", str(eval(expr))  # noqa: S307 (digits and + - * only)


def running_totals(prompt: str) -> list[int]:
    """The value after each operation, left to right (correct without operator precedence).

    >>> running_totals("12+34+5=")
    [46, 51]
    >>> running_totals("7-9+2=")
    [-2, 0]
    """
    numbers = [int(t) for t in re.findall(r"\d+", prompt)]
    ops = re.findall(r"[-+*]", prompt)
    totals, value = [], numbers[0]
    for op, n in zip(ops, numbers[1:], strict=True):
        value = {"+": value + n, "-": value - n, "*": value * n}[op]
        totals.append(value)
    return totals


def solution(prompt: str, answer: str, scratchpad: bool) -> str:
    """What follows the prompt: the answer, or the running totals ending in it.

    >>> solution("12+34+5=", "51", scratchpad=True)
    '46;51'
    >>> solution("12+34+5=", "51", scratchpad=False)
    '51'
    """
    if not scratchpad:
        return answer
    return SEPARATOR.join(map(str, running_totals(prompt)))


def check_spec(spec: ArithmeticSpec) -> None:
    """Refuse specs whose scratchpad would not end in the answer."""
    if spec.scratchpad_share is not None and not (spec.scratchpad and 0.0 <= spec.scratchpad_share <= 1.0):
        raise ValueError(f"scratchpad_share: a fraction in [0, 1] with scratchpad: true, got {spec.scratchpad_share}")
    if spec.scratchpad and "*" in spec.operators and len(spec.operators) > 1:
        # Left-to-right running totals ignore precedence: 2+3*4 would read 5;20, not 14.
        raise ValueError(f"scratchpad: running totals need one precedence level, got operators {spec.operators}")


def n_distinct(spec: ArithmeticSpec) -> int:
    """How many distinct problems the spec allows (to refuse impossible split sizes)."""
    v, ops = spec.max_value + 1, len(spec.operators)
    return sum(v**k * ops ** (k - 1) for k in range(spec.min_operands, spec.max_operands + 1))


def make_splits(spec: ArithmeticSpec) -> dict[str, list[dict]]:
    """All splits, disjoint, deterministic under `spec.seed`."""
    check_spec(spec)
    sizes = {"test": spec.n_test, "train": spec.n_train, "pool": spec.n_pool, "pretrain": spec.n_pretrain}
    need = sum(sizes.values())
    if need > n_distinct(spec):
        raise ValueError(f"{need} distinct problems asked for, but the spec allows only {n_distinct(spec)}")
    rng, seen = random.Random(spec.seed), set()
    style = random.Random(f"style-{spec.seed}")  # its own stream: the problems drawn do not depend on the share
    share = 1.0 if spec.scratchpad_share is None else spec.scratchpad_share
    splits: dict[str, list[dict]] = {}
    for name, size in sizes.items():  # held-out splits first: they never shrink
        rows = []
        while len(rows) < size:
            prompt, answer = problem(rng, spec)
            if prompt not in seen:
                seen.add(prompt)
                sol = solution(prompt, answer, spec.scratchpad and style.random() < share)
                rows.append({"id": len(rows), "prompt": prompt, "answer": answer, "solution": sol})
        splits[name] = rows
    return splits


def write_splits(spec: ArithmeticSpec, out_dir: Path) -> None:
    write_rows(make_splits(spec), out_dir)


def tokenizer_text(row: dict) -> str:
    """What the dataset's tokenizer learns from a pretrain row (the prompt and its bare answer)."""
    return row["prompt"] + row["answer"]
