"""A calculator tool: the model writes an integer expression in angle brackets, the environment answers its value.

An episode on the prompt `12+34+56+78=` (the toy world harness/world/calculator.py writes its demonstrations with
`call_text` and `observation_text`, so they match this environment exactly):

    model:        <12+34+56+78>     a call: `<EXPR>` ending the turn (">" is the stop string)
    environment:  =180;             `=VALUE;`, or `=?;` for a call that cannot be carried out
    model:        180               a turn without a call is the final answer: its last integer

EXPR is integers, + - * and parentheses, no spaces, at most `max_expression_chars` characters. It is evaluated
from its syntax tree, never run; a number or intermediate value beyond +-10^12 makes the call invalid. The episode's
reward is 1 when the final answer equals the row's `answer` (as integers), else 0 (also when no final answer came
before the turn limit); an invalid call also earns the per-turn reward -invalid_penalty.
"""

from __future__ import annotations

import ast
import operator
import re
from functools import partial

from harness.environments import Turn, register_environment, without_eos

OPEN, CLOSE = "<", ">"
MAX_EXPRESSION_CHARS = 40
"""The default longest expression (the toy world checks that its demonstrations fit)."""
MAX_MAGNITUDE = 10**12
EXPRESSION = re.compile(r"[0-9+\-*()]+")
INTEGER = re.compile(r"(?<![\d)])-?\d+")
"""An integer, its minus sign included unless it is a subtraction's."""
OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}


def call_text(expr: str) -> str:
    """A call as the model writes it.

    >>> call_text("12+34")
    '<12+34>'
    """
    return f"{OPEN}{expr}{CLOSE}"


def observation_text(value: int | None) -> str:
    """The environment's answer to a call: `=VALUE;`, or `=?;` for an invalid call (None).

    >>> observation_text(46), observation_text(None)
    ('=46;', '=?;')
    """
    return f"={'?' if value is None else value};"


def evaluate(expr: str, max_chars: int = MAX_EXPRESSION_CHARS) -> int | None:
    """The value of an expression read from its syntax tree; None when it is not one (see the module docstring).

    >>> evaluate("12+34*(2-5)"), evaluate("-3*4"), evaluate("2**3"), evaluate("1 + 2"), evaluate("9" * 13)
    (-90, -12, None, None, None)
    """
    if len(expr) > max_chars or not EXPRESSION.fullmatch(expr):
        return None
    try:
        return _value(ast.parse(expr, mode="eval").body)
    except (SyntaxError, ValueError, RecursionError):
        return None


def _value(node: ast.AST) -> int:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        out = node.value
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        out = -_value(node.operand)
    elif isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
        out = OPERATORS[type(node.op)](_value(node.left), _value(node.right))
    else:
        raise ValueError(f"not integer arithmetic: {type(node).__name__}")
    if abs(out) > MAX_MAGNITUDE:
        raise ValueError("too large")
    return out


def last_integer(text: str) -> int | None:
    """The final answer read from a turn.

    >>> last_integer("so 12+34 is 46"), last_integer("it is -7"), last_integer("5-3"), last_integer("none")
    (46, -7, 3, None)
    """
    found = INTEGER.findall(text)
    return int(found[-1]) if found else None


class Calculator:
    """One episode of the calculator environment."""

    stop = (CLOSE,)

    def __init__(self, max_expression_chars: int, invalid_penalty: float) -> None:
        self.max_chars, self.penalty = max_expression_chars, invalid_penalty

    def reset(self, row: dict) -> None:
        self.gold = int(str(row["answer"]).strip())
        self.final: int | None = None
        self.turns = self.tool_calls = self.invalid_calls = 0

    def step(self, text: str) -> Turn:
        self.turns += 1
        text = without_eos(text).rstrip()
        if not text.endswith(CLOSE):
            self.final = last_integer(text)
            return Turn(None, done=True)
        self.tool_calls += 1
        start = text.rfind(OPEN)
        value = evaluate(text[start + 1 : -1], self.max_chars) if start >= 0 else None
        if value is None:
            self.invalid_calls += 1
            return Turn(observation_text(None), done=False, reward=-self.penalty, tool_call=True, invalid=True)
        return Turn(observation_text(value), done=False, tool_call=True)

    def reward(self) -> float:
        return float(self.final is not None and self.final == self.gold)

    def stats(self) -> dict[str, float]:
        return {"success": self.reward(), "tool_calls": self.tool_calls, "invalid_calls": self.invalid_calls,
                "turns": self.turns}  # fmt: skip


def _check(max_expression_chars: int = MAX_EXPRESSION_CHARS, invalid_penalty: float = 0.0) -> None:
    if not 3 <= max_expression_chars <= 1000:
        raise ValueError(f"max_expression_chars: in 3..1000, got {max_expression_chars}")
    if invalid_penalty < 0:
        raise ValueError(f"invalid_penalty: at least 0 (it is subtracted), got {invalid_penalty}")


@register_environment("calculator", needs_labels=True, validate=_check)
def calculator(max_expression_chars: int = MAX_EXPRESSION_CHARS, invalid_penalty: float = 0.0) -> partial[Calculator]:
    """Episodes with a calculator tool, scored by the final answer against the row's `answer`.

    >>> env = calculator()()
    >>> env.reset({"answer": "46"}), env.step("<12+34>"), env.step("46<eos>").done, env.reward()
    (None, Turn(observation='=46;', done=False, reward=0.0, tool_call=True, invalid=False), True, 1.0)
    """
    _check(max_expression_chars, invalid_penalty)
    return partial(Calculator, max_expression_chars, invalid_penalty)
