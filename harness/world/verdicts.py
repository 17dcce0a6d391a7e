"""Verdicts on sums: the world a toy judge is trained in (the `judge` reward's frozen model at toy scale).

A row shows a sum and a candidate answer, `12+34=56?`, and the judge works the sum out before its verdict: `46 no`
(`yes` when the candidate is the sum's value). A judge that writes before its verdict is a generative judge's usual
shape; here it is also what makes the verdict learnable by a tiny model (a one-bit verdict alone gives it no signal
for the addition it needs, and pre-training stalls at chance). The sums are the arithmetic world's (harness.world.arithmetic, the same spec fields);
wrong candidates are the near misses a toy policy makes (a carry dropped or added, a digit off by one, two digits
swapped, a value off by a few), not random numbers, so a judge must add to tell them apart.

Pre-training shows every sum twice, with its value and with a near miss (a balanced, contrasting pair); the held-out
splits show each sum once, its candidate right with probability 1 - `wrong_share`. Rows are `{"id", "prompt",
"answer", "solution", "expression", "candidate"}`: answer `yes` or `no`, solution the value then the answer.

The judge reward renders a policy's completion into the same shape (`template: "{prompt}{completion}?"` with the
arithmetic world's prompt `12+34=`), so the judge reads the policy's answer as it read its training candidates, and
reads the verdict's probabilities where the judge writes it (`think: true`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from harness.world import arithmetic

YES, NO = "yes", "no"


@dataclass
class VerdictSpec:
    """Sums of `min_operands`..`max_operands` numbers 0..max_value with a candidate answer each."""

    min_operands: int = 2
    max_operands: int = 2
    max_value: int = 99
    wrong_share: float = 0.5
    """Held-out rows (train, pool, test) whose candidate is a near miss rather than the value."""
    n_train: int = 500
    n_pool: int = 500
    n_test: int = 200
    n_pretrain: int = 4000
    """Sums pre-trained on; each gives two rows (its value and a near miss)."""
    seed: int = 0


def near_miss(rng: random.Random, value: int) -> int:
    """A wrong answer of the kind a toy policy writes: off by a carry (10), a digit off by one, digits swapped, or
    off by a few; never the value, and negative only for a negative value.

    >>> sorted({near_miss(random.Random(s), 46) for s in range(200)}) == sorted(
    ...     {near_miss(random.Random(s), 46) for s in range(200)} - {46})
    True
    """
    while True:
        kind = rng.randrange(4)
        if kind == 0:
            out = value + rng.choice([-10, 10])
        elif kind == 1:
            out = value + rng.choice([-1, 1, -11, 11, -9, 9])
        elif kind == 2 and value >= 10:
            digits = list(str(value))
            i = rng.randrange(len(digits) - 1)
            digits[i], digits[i + 1] = digits[i + 1], digits[i]
            if digits[0] == "0":  # 102 -> 012: not a number a policy writes
                continue
            out = int("".join(digits))
        else:
            out = value + rng.choice([-1, 1]) * rng.randint(2, 5)
        if out != value and (out >= 0 or value < 0):
            return out


def check_spec(spec: VerdictSpec) -> None:
    if not 0.0 <= spec.wrong_share <= 1.0:
        raise ValueError(f"wrong_share: a fraction in [0, 1], got {spec.wrong_share}")
    arithmetic.check_spec(_sums(spec))


def _sums(spec: VerdictSpec) -> arithmetic.ArithmeticSpec:
    return arithmetic.ArithmeticSpec(
        min_operands=spec.min_operands, max_operands=spec.max_operands, max_value=spec.max_value,
        n_train=spec.n_train, n_pool=spec.n_pool, n_test=spec.n_test, n_pretrain=spec.n_pretrain, seed=spec.seed,
    )  # fmt: skip


def row(expression: str, value: str, candidate: int) -> dict:
    """One verdict row (without its id).

    >>> {k: row("12+34=", "46", 56)[k] for k in ("prompt", "answer", "solution")}
    {'prompt': '12+34=56?', 'answer': 'no', 'solution': '46 no'}
    """
    verdict = YES if str(candidate) == value else NO
    return {"prompt": f"{expression}{candidate}?", "answer": verdict, "solution": f"{value} {verdict}",
            "expression": expression, "candidate": str(candidate)}  # fmt: skip


def make_splits(spec: VerdictSpec) -> dict[str, list[dict]]:
    """All splits, their sums disjoint (the arithmetic world's), deterministic under `spec.seed`."""
    check_spec(spec)
    sums = arithmetic.make_splits(_sums(spec))
    rng = random.Random(f"verdicts-{spec.seed}")
    out: dict[str, list[dict]] = {}
    for name, rows in sums.items():
        made = []
        for r in rows:
            value = int(r["answer"])
            if name == "pretrain":
                pair = [row(r["prompt"], r["answer"], value), row(r["prompt"], r["answer"], near_miss(rng, value))]
                made += pair if rng.random() < 0.5 else pair[::-1]
            else:
                wrong = rng.random() < spec.wrong_share
                made.append(row(r["prompt"], r["answer"], near_miss(rng, value) if wrong else value))
        out[name] = [{"id": i} | r for i, r in enumerate(made)]
    return out


def tokenizer_text(row: dict) -> str:
    return row["prompt"] + row["solution"]
