"""The one grader: final-answer extraction and comparison, shared by rewards and evaluation.

Extraction follows what math graders do with free text: the last `\\boxed{...}` if there is one,
else the last number. A bare toy completion such as "46" is its own final answer. Multiple-choice
suites (GPQA, MMLU-Pro, ARC) read a choice letter instead. Each extractor is registered by name
with a version; an evaluation suite names its extractors and the fingerprint records both.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

from harness.registry import Registry

VERSION = "1"
"""Bumped whenever comparison (normalize) changes: it is part of the evaluation fingerprint."""

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


def repeat_scores(responses: list[str], gold: str) -> dict[str, float]:
    """lm-eval's per-question metrics for n repeats: pass@1 (mean correctness) and maj@n (the vote's).

    >>> repeat_scores(["so 7", "8", "\\\\boxed{7}"], "7")
    {'pass@1': 0.6666666666666666, 'maj@n': 1.0}
    """
    vote = majority_answer([extract_answer(r) for r in responses])
    return {
        "pass@1": sum(is_correct(r, gold) for r in responses) / len(responses),
        "maj@n": float(vote is not None and vote == normalize(str(gold))),
    }


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


@dataclass(frozen=True)
class Extractor:
    """A final-answer extractor: text -> normalised answer or None, with the version results record."""

    fn: Callable[[str], str | None]
    version: str
    """Bumped whenever what `fn` or `gold` returns for some text changes."""
    gold_fn: Callable[[str], str | None] | None = None
    """Reads the gold answer out of a benchmark's target when the target is more than the answer
    (GSM8K's worked solution ending in `#### 72`, GPQA's `(B)`); None: the target is the answer."""
    equivalent: Callable[[str, str], bool] | None = None
    """(answer, gold) -> whether they are the same answer written differently (`\\frac{1}{2}` and `0.5`);
    None: only identical strings are."""

    def __call__(self, text: str) -> str | None:
        return self.fn(text)

    def canonical(self, answer: str | None, gold: str) -> str | None:
        r"""`gold` for an answer equivalent to it, else the answer itself: after this, correctness (and every
        metric counting agreement with the gold answer) is string equality.

        >>> EXTRACTORS.get("math_verify").canonical("\\frac{64}{5}", "12.8"), EXTRACTORS.get("math_verify").canonical("13", "12.8")
        ('12.8', '13')
        """
        if answer is None or answer == gold or self.equivalent is None:
            return answer
        return gold if self.equivalent(answer, gold) else answer

    def correct(self, completion: str, gold: str) -> bool:
        """Whether `completion`'s final answer is the gold answer (read out of a target by `gold`)."""
        answer, expected = self(completion), self.gold(gold)
        return answer is not None and self.canonical(answer, expected) == expected

    def gold(self, target: str) -> str:
        """The gold answer of a target, normalised like extracted answers.

        >>> EXTRACTORS.get("boxed_or_last_number").gold("3 + 4 = 7 #### 7"), EXTRACTORS.get("choice_letter").gold("(B)")
        ('7', 'B')
        """
        found = self.gold_fn(target) if self.gold_fn else None
        return found if found is not None else normalize(target)


def _after_hashes(target: str) -> str | None:
    return normalize(target.rsplit("####", 1)[1]) if "####" in target else None


EXTRACTORS: Registry[Extractor] = Registry("answer extractor")
EXTRACTORS.register("boxed_or_last_number")(Extractor(extract_answer, "1", _after_hashes))

_CHOICE = re.compile(r"answer is:?\s*\(?([A-J])\)?(?![A-Za-z])|answer:\s*\(?([A-J])\)?(?![A-Za-z])", re.IGNORECASE)
_LONE_LETTER = re.compile(r"(?<![A-Za-z])\(?([A-J])\)?(?![A-Za-z])(?<!\bI(?= [a-z]))(?<!\bA(?= [a-z]))")
"""A standalone capital A-J, except the pronoun "I" and the article "A" (followed by a lower-case word)."""


def extract_choice(text: str) -> str | None:
    """The chosen option letter: the last "answer is (X)" / "Answer: X", else a boxed letter, else
    the last standalone capital A-J.

    >>> extract_choice("B looks wrong. The answer is (C).")
    'C'
    >>> extract_choice("so \\\\boxed{D}"), extract_choice("I pick A"), extract_choice("no idea") is None
    ('D', 'A', True)
    """
    said = _CHOICE.findall(text)
    if said:
        return next(g for g in said[-1] if g).upper()
    boxed = last_boxed(text)
    if boxed is not None and len(boxed.strip().strip("()")) == 1:
        return boxed.strip().strip("()").upper()
    lone = _LONE_LETTER.findall(text)
    return lone[-1] if lone else None


EXTRACTORS.register("choice_letter")(Extractor(extract_choice, "1", extract_choice))


# ----------------------------------------------------------------------------- symbolic equivalence (math-verify)


def _math_verify_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("math-verify")
    except PackageNotFoundError:
        return "absent"


@functools.lru_cache(maxsize=65536)
def _parsed(text: str, anchored: bool) -> tuple:
    """math-verify's reading of `text`: (sympy object, its string) pairs; `anchored`: a whole response, read from
    its last \\boxed{} or final-answer phrase, else a bare answer (wrapped in $...$ so LaTeX parses)."""
    from math_verify import parse

    return tuple(parse(text if anchored else f"${text}$"))


def extract_math(text: str) -> str | None:
    r"""The final answer as math-verify reads a response (the last `oxed{}` first), as LaTeX text; None if none.

    >>> extract_math("so the answer is $\\boxed{\\dfrac{1}{2}}$."), extract_math("no answer here") is None
    ('\\frac{1}{2}', True)
    """
    found = _parsed(text, True)
    return str(found[-1]).strip() or None if found else None


def math_equivalent(answer: str, gold: str) -> bool:
    r"""Whether two answers are the same mathematical object (numbers, fractions, radicals, intervals, sets,
    expressions), by math-verify (sympy), with its default numeric tolerance.

    >>> math_equivalent("0.5", "\\frac{1}{2}"), math_equivalent("(1, 2]", "(1,2]"), math_equivalent("6", "5")
    (True, True, False)
    """
    from math_verify import verify

    mine, theirs = _parsed(answer, False), _parsed(gold, False)
    return bool(mine and theirs and verify(list(theirs), list(mine)))


def _math_gold(target: str) -> str:
    """A math target as written (after `####` when it is a worked solution): no separators removed, `(1,2]` and
    `\\{1,2\\}` keep their commas."""
    return (target.rsplit("####", 1)[1] if "####" in target else target).strip()


EXTRACTORS.register("math_verify")(
    Extractor(extract_math, f"1+math-verify-{_math_verify_version()}", _math_gold, math_equivalent)
)


# Imported for their registrations: the graders that run the answer (in harness.sandbox).
from harness.grader import executed as _executed  # noqa: E402,F401
