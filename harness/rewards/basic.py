"""Per-sample rewards: each completion scored on its own."""

from __future__ import annotations

from harness.grader import extract_answer, is_correct
from harness.rewards import RewardFn, register_reward


@register_reward("exact_match", needs_labels=True)
def exact_match() -> RewardFn:
    """1 if the completion's final answer equals the gold `answer`, else 0.

    >>> exact_match()(["41", "the sum is 42"], answer=["42", "42"])
    [0.0, 1.0]
    """

    def reward(completions: list[str], answer: list[str], **_) -> list[float]:
        return [float(is_correct(c, a)) for c, a in zip(completions, answer, strict=True)]

    return reward


@register_reward("reference_text", needs_labels=True)
def reference_text() -> RewardFn:
    r"""1 if the completion's first line, stripped, is the gold `answer` text exactly, else 0: matching one reference
    program or query as written, with no execution (the contrast to `unit_tests` and `sql_match`).

    >>> reference_text()(["(x+3)*2\nmore", "2*(x+3)"], answer=["(x+3)*2", "(x+3)*2"])
    [1.0, 0.0]
    """

    def reward(completions: list[str], answer: list[str], **_) -> list[float]:
        return [
            float(c.strip().split("\n", 1)[0].strip() == str(a).strip())
            for c, a in zip(completions, answer, strict=True)
        ]

    return reward


@register_reward("format", needs_labels=False)
def answer_format() -> RewardFn:
    """1 if a final answer can be extracted from the completion, else 0.

    >>> answer_format()(["42", "dunno"])
    [1.0, 0.0]
    """

    def reward(completions: list[str], **_) -> list[float]:
        return [float(extract_answer(c) is not None) for c in completions]

    return reward


@register_reward("length", needs_labels=False)
def length(max_chars: int) -> RewardFn:
    """Brevity: r = 1 - min(len(c), max_chars) / max_chars, from 1 (empty) down to 0 (max_chars or longer).

    >>> length(max_chars=4)(["", "ab", "abcd", "abcdefgh"])
    [1.0, 0.5, 0.0, 0.0]
    """
    if max_chars <= 0:
        raise ValueError(f"length: max_chars must be positive, got {max_chars}")

    def reward(completions: list[str], **_) -> list[float]:
        return [1.0 - min(len(c), max_chars) / max_chars for c in completions]

    return reward


@register_reward("matches", needs_labels=False)
def matches(pattern: str) -> RewardFn:
    """1 if the whole completion (stripped) matches the regular expression `pattern`, else 0: a style judge.

    >>> matches(pattern=r"\\d+(;\\d+)+")(["46;51", "51", "46;"])
    [1.0, 0.0, 0.0]
    """
    import re

    try:
        compiled = re.compile(pattern)
    except re.error as e:
        raise ValueError(f"matches: pattern {pattern!r} is not a regular expression: {e}") from None

    def reward(completions: list[str], **_) -> list[float]:
        return [float(compiled.fullmatch(c.strip()) is not None) for c in completions]

    return reward
