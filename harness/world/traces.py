"""Synthetic execution reasoning: predict what a straight-line program computes, statement by statement.

The prompt is a short program on one line, the completion its trace: the value each assignment gives, in order,
then what it prints, `;`-separated (the last number is the answer), for example

    a=7;b=a+3;c=b*2;print(c-a)#   ->   7;10;20;13

Programs have 2..`max_statements` assignments to a, b, c, d (the first a constant, each later one an earlier
variable combined with another or a constant by + - or *) and one print of such an expression; every value lies
in 0..`max_value`. `program` holds the Python source (one statement a line) that a tracer runs in the sandbox to
get the trace (the `execution_trace` reward, as ExecVerify's white-box rewards read an interpreter's trace);
`answer` is the printed value, `solution` the full trace. Rows are `{"id", "prompt", "answer", "solution",
"program"}`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

NAMES = "abcd"


@dataclass
class TraceSpec:
    """Straight-line programs of `min_statements`..`max_statements` assignments and a print."""

    min_statements: int = 2
    max_statements: int = 3
    max_constant: int = 9
    """Constants are drawn from 1..max_constant (multipliers from 2..min(max_constant, 4))."""
    max_value: int = 99
    """Every assigned and printed value lies in 0..max_value (programs that leave it are redrawn)."""
    instruction: str = ""
    """Text put before each program (paper scale: tells an instruct model the answer's format); empty for toy."""
    n_train: int = 500
    n_pool: int = 500
    n_test: int = 200
    n_pretrain: int = 6000
    seed: int = 0


def _expression(rng: random.Random, known: list[str], spec: TraceSpec) -> str:
    op = rng.choice("+-*")
    left = rng.choice(known)
    if op == "*":
        return f"{left}*{rng.randint(2, min(spec.max_constant, 4))}"
    right = rng.choice([k for k in known if k != left or op == "+"] + [str(rng.randint(1, spec.max_constant))] * 2)
    return f"{left}{op}{right}"


def program(rng: random.Random, spec: TraceSpec) -> tuple[list[str], list[int]] | None:
    """(statements, trace) of one random program, or None when a value leaves 0..max_value. The trace is computed
    by evaluating the generated expressions (our own text, integers and + - * only).

    >>> program(random.Random(2), TraceSpec())
    (['a=3', 'b=a+3', 'print(b*3)'], [3, 6, 18])
    """
    n = rng.randint(spec.min_statements, spec.max_statements)
    env: dict[str, int] = {}
    statements, trace = [], []
    for i in range(n + 1):
        expr = str(rng.randint(1, spec.max_constant * 2)) if i == 0 else _expression(rng, list(env), spec)
        value = eval(expr, {"__builtins__": {}}, dict(env))  # noqa: S307 - our generated integer arithmetic
        if not 0 <= value <= spec.max_value:
            return None
        trace.append(value)
        if i < n:
            env[NAMES[i]] = value
            statements.append(f"{NAMES[i]}={expr}")
        else:
            statements.append(f"print({expr})")
    return statements, trace


def check_spec(spec: TraceSpec) -> None:
    if not 1 <= spec.min_statements <= spec.max_statements <= len(NAMES):
        raise ValueError(f"traces: need 1 <= min_statements <= max_statements <= {len(NAMES)}, "
                         f"got {spec.min_statements}, {spec.max_statements}")  # fmt: skip
    if not 2 <= spec.max_constant <= 99:
        raise ValueError(f"traces.max_constant: in 2..99, got {spec.max_constant}")
    if not 2 * spec.max_constant <= spec.max_value <= 10**6:
        raise ValueError(f"traces.max_value: in 2*max_constant..1e6, got {spec.max_value}")


def make_splits(spec: TraceSpec) -> dict[str, list[dict]]:
    """Disjoint splits (no program in two of them), deterministic under `spec.seed`, held-out ones first."""
    check_spec(spec)
    sizes = {"test": spec.n_test, "train": spec.n_train, "pool": spec.n_pool, "pretrain": spec.n_pretrain}
    rng, seen, splits = random.Random(spec.seed), set(), {}
    for name, size in sizes.items():
        rows, tries = [], 0
        while len(rows) < size:
            tries += 1
            if tries > 200 * (size + 10):
                raise ValueError(f"traces: could not draw {size} distinct {name} programs; widen the spec")
            drawn = program(rng, spec)
            if drawn is None or ";".join(drawn[0]) in seen:
                continue
            statements, trace = drawn
            seen.add(";".join(statements))
            rows.append({
                "id": len(rows),
                "prompt": f"{spec.instruction}{';'.join(statements)}#",
                "answer": str(trace[-1]),
                "solution": ";".join(map(str, trace)),
                "program": "\n".join(statements) + "\n",
            })  # fmt: skip
        splits[name] = rows
    return splits


def tokenizer_text(row: dict) -> str:
    """What the dataset's tokenizer learns from a pretrain row (the program and its trace)."""
    return row["prompt"] + row["solution"]
