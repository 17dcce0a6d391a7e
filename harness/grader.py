"""The one grader: final-answer extraction and comparison, shared by rewards and evaluation.

Extraction follows what math graders do with free text: the last `\\boxed{...}` if there is one,
else the last number. A bare toy completion such as "46" is its own final answer.
"""

from __future__ import annotations

import re

VERSION = "1"
"""Bumped whenever extraction or comparison changes: it is part of the evaluation fingerprint."""

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def extract_answer(text: str) -> str | None:
    """The final answer in `text`, normalised, or None.

    >>> extract_answer("12+30 is 42, so the answer is \\\\boxed{42}.")
    '42'
    >>> extract_answer("17 + 25 = 42")
    '42'
    >>> extract_answer("no idea") is None
    True
    """
    boxed = last_boxed(text)
    if boxed is not None:
        return normalize(boxed)
    numbers = _NUMBER.findall(text)
    return normalize(numbers[-1]) if numbers else None


def last_boxed(text: str) -> str | None:
    r"""The content of the last `\boxed{...}`, nested braces included, or None.

    >>> last_boxed("so \\boxed{\\frac{1}{2}}")
    '\\frac{1}{2}'
    """
    span = _boxed_span(text)
    return text[span[0] : span[1]] if span else None


def _boxed_span(text: str) -> tuple[int, int] | None:
    """[start, end) of the content of the last `\\boxed{...}`, or None if absent or unclosed."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 1, start + len("\\boxed{")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return i, j
    return None  # unclosed


def answer_span(text: str) -> tuple[int, int] | None:
    r"""[start, end) of the final answer that `extract_answer` reads, or None: the content of the last
    `\boxed{...}`, else the last number.

    `normalize(text[start:end]) == extract_answer(text)` whenever there is an answer, so a reward can
    split a completion into its reasoning `text[:start]` and its answer.

    >>> answer_span("so \\boxed{42}.")
    (10, 12)
    >>> answer_span("17 + 25 = 42")
    (10, 12)
    >>> answer_span("no idea") is None
    True
    """
    boxed = _boxed_span(text)
    if boxed is not None:
        return boxed
    numbers = list(_NUMBER.finditer(text))
    return numbers[-1].span() if numbers else None


def normalize(answer: str) -> str:
    """Canonical form: no spaces or thousands separators; integral floats as integers."""
    a = answer.strip().replace(",", "").replace(" ", "").rstrip(".")
    try:
        f = float(a)
    except ValueError:
        return a
    return str(int(f)) if f.is_integer() else repr(f)


def is_correct(completion: str, gold: str) -> bool:
    """Whether the final answer of `completion` equals the gold answer."""
    pred = extract_answer(completion)
    return pred is not None and pred == normalize(str(gold))


def majority_answer(answers: list[str | None]) -> str | None:
    """The most frequent non-None answer; ties go to the one seen first.

    >>> majority_answer(["3", None, "4", "4", "3"])
    '3'
    >>> majority_answer([None, None]) is None
    True
    """
    counts: dict[str, int] = {}
    for a in answers:
        if a is not None:
            counts[a] = counts.get(a, 0) + 1
    return max(counts, key=counts.__getitem__) if counts else None
