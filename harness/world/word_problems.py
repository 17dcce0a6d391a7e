"""Synthetic GSM8K-style word problems: a short story of quantity changes, one numeric answer.

A problem starts with someone holding a number of things, applies `steps` changes (buy more,
give some away, multiply, share out evenly), then asks how many are left. Every intermediate
value is a non-negative integer. Rows are `{"id", "prompt", "answer", "solution"}`, the
solution a worked chain of arithmetic ending in "The answer is N." (the reference for SFT and
likelihood-based curation); graders read the last number, as GSM8K graders do.

Difficulty knobs (WordProblemSpec): the number of steps, the size of the numbers, the
largest multiplier/divisor, and which operations may appear.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

NAMES = ("Ava", "Ben", "Chloe", "Dev", "Emma", "Finn", "Grace", "Hiro", "Iris", "Jamal", "Kira", "Leo",
         "Maya", "Noah", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tara")  # fmt: skip
THINGS = ("apples", "marbles", "stickers", "books", "pencils", "cookies", "coins", "shells", "cards", "stamps",
          "eggs", "balloons")  # fmt: skip
OPERATIONS = ("+", "-", "*", "/")


@dataclass
class WordProblemSpec:
    """Synthetic GSM8K-style word problems: a start value changed by `min_steps`..`max_steps` story steps;
    numbers stay non-negative integers."""

    min_steps: int = 1
    max_steps: int = 2
    max_value: int = 20
    """Largest starting amount and largest amount bought, given or lost."""
    max_factor: int = 3
    """Largest multiplier (`* n`) and divisor (`/ n`, exact division only)."""
    max_result: int = 100
    """A multiplication is drawn only while the product stays at or below this."""
    operators: list[str] = field(default_factory=lambda: ["+", "-"])
    """Among + - * /."""
    n_train: int = 500
    n_pool: int = 500
    n_test: int = 200
    n_pretrain: int = 2000
    """Only for a toy model pre-trained on the stories; also the text the dataset's tokenizer learns."""
    seed: int = 0


PHRASES = {
    "+": ("{who} buys {n} more {things}.", "{friend} gives {who} {n} more {things}.", "{who} finds {n} more {things}."),
    "-": (
        "{who} gives {n} {things} to {friend}.",
        "{who} loses {n} of the {things}.",
        "{who} uses {n} of the {things}.",
    ),
    "*": ("{who} ends up with {n} times as many {things} as before.",),
    "/": ("{who} splits the {things} into {n} equal piles and keeps one pile.",),
}


def step(rng: random.Random, value: int, spec: WordProblemSpec) -> tuple[str, int] | None:
    """One change to `value`: (operator, operand), or None when no allowed operator fits."""
    options = []
    for op in spec.operators:
        if op == "+":
            options.append(("+", rng.randint(1, spec.max_value)))
        elif op == "-" and value >= 2:  # something is always left
            options.append(("-", rng.randint(1, value - 1)))
        elif op == "*" and 0 < value * 2 <= spec.max_result:
            options.append(("*", rng.randint(2, min(spec.max_factor, spec.max_result // value))))
        elif op == "/":
            divisors = [d for d in range(2, spec.max_factor + 1) if value % d == 0] if value else []
            if divisors:
                options.append(("/", rng.choice(divisors)))
    return rng.choice(options) if options else None


def apply(value: int, op: str, n: int) -> int:
    """The value after one change.

    >>> apply(12, "/", 3), apply(4, "-", 3), apply(5, "*", 2)
    (4, 1, 10)
    """
    return {"+": value + n, "-": value - n, "*": value * n, "/": value // n}[op]


def problem(rng: random.Random, spec: WordProblemSpec) -> dict:
    """One problem: prompt (the story and question), answer and worked solution."""
    who, friend = rng.sample(NAMES, 2)
    things = rng.choice(THINGS)
    value = rng.randint(2, spec.max_value)
    story, work = [f"{who} has {value} {things}."], []
    for _ in range(rng.randint(spec.min_steps, spec.max_steps)):
        change = step(rng, value, spec)
        if change is None:
            break
        op, n = change
        new = apply(value, op, n)
        story.append(rng.choice(PHRASES[op]).format(who=who, friend=friend, things=things, n=n))
        work.append(f"{value} {'x' if op == '*' else op} {n} = {new}.")
        value = new
    story.append(f"How many {things} does {who} have now?")
    return {"prompt": " ".join(story), "answer": str(value), "solution": " ".join(work + [f"The answer is {value}."])}


def check_spec(spec: WordProblemSpec) -> None:
    """Refuse specs that cannot produce a problem as described."""
    unknown = set(spec.operators) - set(OPERATIONS)
    if unknown or not spec.operators:
        raise ValueError(f"word_problems.operators: {sorted(unknown) or 'none'} not among {list(OPERATIONS)}")
    if not 1 <= spec.min_steps <= spec.max_steps:
        raise ValueError(f"word_problems: need 1 <= min_steps <= max_steps, got {spec.min_steps}, {spec.max_steps}")
    if spec.max_value < 2 or spec.max_factor < 2 or spec.max_result < spec.max_value:
        raise ValueError("word_problems: need max_value >= 2, max_factor >= 2, max_result >= max_value")


def make_splits(spec: WordProblemSpec) -> dict[str, list[dict]]:
    """Disjoint splits (no prompt in two of them), deterministic under `spec.seed`, held-out ones first."""
    check_spec(spec)
    sizes = {"test": spec.n_test, "train": spec.n_train, "pool": spec.n_pool, "pretrain": spec.n_pretrain}
    rng, seen, splits = random.Random(spec.seed), set(), {}
    for name, size in sizes.items():
        rows, tries = [], 0
        while len(rows) < size:
            tries += 1
            if tries > 100 * (size + 10):
                raise ValueError(f"word_problems: could not draw {size} distinct {name} problems; widen the spec")
            row = problem(rng, spec)
            if row["prompt"] not in seen:
                seen.add(row["prompt"])
                rows.append({"id": len(rows)} | row)
        splits[name] = rows
    return splits


def tokenizer_text(row: dict) -> str:
    """What the dataset's tokenizer learns from a pretrain row (the story and its worked solution)."""
    return row["prompt"] + " " + row["solution"]
