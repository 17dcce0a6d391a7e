"""Answer extractors: registered by name with a version, reading answers and gold targets alike."""

from __future__ import annotations

import pytest

from harness.grader import EXTRACTORS, extract_choice


@pytest.mark.parametrize(
    "text, letter",
    [
        ("Let me think. (A) is too small... The answer is (C).", "C"),
        ("Answer: d", "D"),
        ("the answer is: B because", "B"),
        ("so the final choice is \\boxed{E}", "E"),
        ("I think A. No wait, B", "B"),
        ("B is right, I think", "B"),  # the pronoun I is not option I ...
        ("(I) is correct", "I"),  # ... but a bracketed I is
        ("A good guess: C", "C"),
        ("no option named", None),
    ],
)
def test_choice_letter(text, letter):
    assert extract_choice(text) == letter


@pytest.mark.parametrize(
    "name, target, gold",
    [
        ("boxed_or_last_number", "Natalia sold 48/2 = 24 clips in May.\n#### 72", "72"),  # GSM8K: after ####
        ("boxed_or_last_number", "\\frac{14}{3}", "\\frac{14}{3}"),  # MATH-500: the target is the answer
        ("boxed_or_last_number", "1,024", "1024"),
        ("choice_letter", "(B)", "B"),  # GPQA
        ("choice_letter", "J", "J"),  # MMLU-Pro
    ],
)
def test_gold_targets(name, target, gold):
    assert EXTRACTORS.get(name).gold(target) == gold


def test_every_extractor_has_a_version_and_unknown_names_suggest():
    for name in EXTRACTORS.names():
        assert EXTRACTORS.get(name).version
    with pytest.raises(KeyError, match="did you mean 'choice_letter'"):
        EXTRACTORS.get("choice_leter")
