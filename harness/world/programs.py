"""Synthetic program writing: a one-line Python function from a description in words.

The prompt is the start of a function whose docstring says what it computes, the completion its return
expression, for example

    def f(x): "add 3, times 2"; return      ->   (x+3)*2     (or 2*(x+3), x*2+6, ...)

A description is 1..`max_steps` steps (add k, subtract k, times k), applied left to right to x. Many expressions
compute the same function, so the pre-training corpus shows several correct forms (`solution` is drawn per row
among them) while `answer` keeps one reference form. Grading runs the program: `tests` holds assert statements
on `f` at fixed inputs (for the `unit_tests` reward, with the prompt prepended), and the evaluation's
`python_expression` extractor compares a completion with the reference by running both on the same inputs in
the sandbox. Rows are `{"id", "prompt", "answer", "solution", "tests"}`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

OPERATIONS = ("add", "subtract", "times")
INPUTS = (-3, -1, 0, 1, 2, 5, 7, 10)
"""Where tests and the evaluation compare a program with the reference."""


@dataclass
class ProgramSpec:
    """One-line functions of x from descriptions of `min_steps`..`max_steps` steps."""

    min_steps: int = 1
    max_steps: int = 3
    max_constant: int = 9
    """Constants k of the steps are drawn from 2..max_constant."""
    operations: list[str] = field(default_factory=lambda: list(OPERATIONS))
    """Among add, subtract, times."""
    n_train: int = 500
    n_pool: int = 500
    n_test: int = 200
    n_pretrain: int = 6000
    variant_share: float = 0.5
    """Fraction of rows whose solution is another correct form of the expression, not the reference."""
    seed: int = 0


WORDS = {"add": "add {k}", "subtract": "subtract {k}", "times": "times {k}"}


def reference(steps: list[tuple[str, int]]) -> str:
    """The reference expression: each step applied to the whole expression so far.

    >>> reference([("add", 3), ("times", 2)])
    '(x+3)*2'
    >>> reference([("times", 2), ("add", 3), ("subtract", 4)])
    'x*2+3-4'
    """
    expr = "x"
    for op, k in steps:
        if op == "times":
            expr = f"({expr})*{k}" if ("+" in expr or "-" in expr) else f"{expr}*{k}"
        else:
            expr = f"{expr}{'+' if op == 'add' else '-'}{k}"
    return expr


def variant(steps: list[tuple[str, int]], rng: random.Random) -> str:
    """Another correct form: the constant first where the operation commutes, or the expanded linear form.

    >>> variant([("add", 3), ("times", 2)], random.Random(0)) in {"2*(x+3)", "x*2+6", "2*(3+x)", "(3+x)*2"}
    True
    """
    a, b = 1, 0  # f(x) = a*x + b
    for op, k in steps:
        a, b = (a * k, b * k) if op == "times" else (a, b + (k if op == "add" else -k))
    forms = [_commuted(steps), _linear(a, b)]
    forms = [f for f in forms if f != reference(steps)] or [reference(steps)]
    return rng.choice(forms)


def _commuted(steps: list[tuple[str, int]]) -> str:
    expr = "x"
    for op, k in steps:
        if op == "times":
            expr = f"{k}*({expr})" if ("+" in expr or "-" in expr) else f"{k}*{expr}"
        elif op == "add":
            expr = f"{k}+{expr}" if expr == "x" else f"{expr}+{k}"
        else:
            expr = f"{expr}-{k}"
    return expr


def _linear(a: int, b: int) -> str:
    """`a*x+b` written plainly: `x*2+6`, `x-1`, `x*3`, `5` (a = 0 cannot happen: constants are >= 2)."""
    head = "x" if a == 1 else f"x*{a}"
    return head if b == 0 else f"{head}{'+' if b > 0 else '-'}{abs(b)}"


def evaluate(expr: str, x: int) -> int | None:
    """The value of an expression at x, computed from its syntax tree without running it: only integers, `x`,
    + - * and parentheses are understood; anything else (or a huge number) gives None. Safe for model-written
    text (the quick skill checks of pre-training use it; rewards and evaluation run programs in the sandbox).

    >>> evaluate("(x+3)*2", 5), evaluate("2*(3+x)", 5), evaluate("__import__('os')", 5), evaluate("x+", 5)
    (16, 16, None, None)
    """
    import ast

    def value(node) -> int:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.Name) and node.id == "x":
            return x
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            return -value(node.operand) if isinstance(node.op, ast.USub) else value(node.operand)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult)):
            a, b = value(node.left), value(node.right)
            out = a + b if isinstance(node.op, ast.Add) else a - b if isinstance(node.op, ast.Sub) else a * b
            if abs(out) > 10**12:
                raise ValueError("too large")
            return out
        raise ValueError(f"not understood: {ast.dump(node)[:40]}")

    try:
        return value(ast.parse(expr.strip(), mode="eval").body)
    except (SyntaxError, ValueError, RecursionError):
        return None


def same_function(expr: str, reference_expr: str) -> bool:
    """Whether `expr` computes the reference's values at every one of INPUTS (syntax-tree evaluation, no running).

    >>> same_function("x*2+6", "(x+3)*2"), same_function("x*2+3", "(x+3)*2")
    (True, False)
    """
    return all((v := evaluate(expr, x)) is not None and v == evaluate(reference_expr, x) for x in INPUTS)


def problem(rng: random.Random, spec: ProgramSpec) -> dict:
    steps = [(rng.choice(spec.operations), rng.randint(2, spec.max_constant))
             for _ in range(rng.randint(spec.min_steps, spec.max_steps))]  # fmt: skip
    words = ", ".join(WORDS[op].format(k=k) for op, k in steps)
    ref = reference(steps)
    return {
        "prompt": f'def f(x): "{words}"; return ',
        "answer": ref,
        "steps": steps,
        "tests": [f"assert f({x}) == {evaluate(ref, x)}" for x in INPUTS],
    }


def check_spec(spec: ProgramSpec) -> None:
    unknown = set(spec.operations) - set(OPERATIONS)
    if unknown or not spec.operations:
        raise ValueError(f"programs.operations: {sorted(unknown) or 'none'} not among {list(OPERATIONS)}")
    if not 1 <= spec.min_steps <= spec.max_steps <= 6:
        raise ValueError(f"programs: need 1 <= min_steps <= max_steps <= 6, got {spec.min_steps}, {spec.max_steps}")
    if not 2 <= spec.max_constant <= 99:
        raise ValueError(f"programs.max_constant: in 2..99, got {spec.max_constant}")
    if not 0.0 <= spec.variant_share <= 1.0:
        raise ValueError(f"programs.variant_share: a fraction in [0, 1], got {spec.variant_share}")


def make_splits(spec: ProgramSpec) -> dict[str, list[dict]]:
    """Disjoint splits (no description in two of them), deterministic under `spec.seed`, held-out ones first."""
    check_spec(spec)
    sizes = {"test": spec.n_test, "train": spec.n_train, "pool": spec.n_pool, "pretrain": spec.n_pretrain}
    rng, style, seen, splits = random.Random(spec.seed), random.Random(f"style-{spec.seed}"), set(), {}
    for name, size in sizes.items():
        rows, tries = [], 0
        while len(rows) < size:
            tries += 1
            if tries > 100 * (size + 10):
                raise ValueError(f"programs: could not draw {size} distinct {name} descriptions; widen the spec")
            p = problem(rng, spec)
            if p["prompt"] in seen:
                continue
            seen.add(p["prompt"])
            steps = p.pop("steps")
            solution = variant(steps, style) if style.random() < spec.variant_share else p["answer"]
            rows.append({"id": len(rows)} | p | {"solution": solution})
        splits[name] = rows
    return splits


def tokenizer_text(row: dict) -> str:
    """What the dataset's tokenizer learns from a pretrain row (the prompt and the form of the solution)."""
    return row["prompt"] + row["solution"]
