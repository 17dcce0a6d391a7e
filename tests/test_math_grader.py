"""The math_verify grader (harness/grader/) on equivalences a string match gets wrong, with expectations checked
by hand: the same number, interval, set or expression written differently is the same answer; a different one is
not. Also what it reads out of a whole response, the reward built on it, and what an evaluation records."""

from __future__ import annotations

import pytest

from harness.grader import EXTRACTORS
from harness.rewards import REWARDS

GRADER = EXTRACTORS.get("math_verify")

SAME = [
    ("0.5", "\\frac{1}{2}"),  # a decimal and a fraction
    ("\\frac{64}{5}", "12.8"),  # One-Shot RLVR's pi_1 answer
    ("\\dfrac{1}{2}", "\\frac12"),  # display fraction, braces left out
    ("-0.5", "-\\frac{1}{2}"),
    ("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}"),  # rationalised or not
    ("(1, 2]", "(1,2]"),  # an interval, spaced or not
    ("\\{2, 1\\}", "\\{1,2\\}"),  # a set in another order
    ("1+x^2", "x^2+1"),  # a polynomial in another order
    ("3\\text{ cm}", "3"),  # a unit after the number
    ("2^{10}", "1024"),
]
DIFFERENT = [
    ("6", "5"),
    ("[1, 2]", "(1,2]"),  # a closed end is another interval
    ("0.33", "\\frac{1}{3}"),  # a rounded decimal is not the fraction
    ("\\{1, 2, 3\\}", "\\{1,2\\}"),
    ("x^2-1", "x^2+1"),
    ("-12.8", "12.8"),
]


@pytest.mark.parametrize(("answer", "gold"), SAME)
def test_the_same_answer_written_differently_is_correct(answer, gold):
    assert GRADER.canonical(answer, gold) == gold
    assert GRADER.correct(f"so the answer is $\\boxed{{{answer}}}$.", gold)


def test_the_string_grader_misses_all_but_one_of_them():
    strings = EXTRACTORS.get("boxed_or_last_number")
    missed = [answer for answer, gold in SAME if not strings.correct(f"\\boxed{{{answer}}}", gold)]
    assert missed == [answer for answer, _ in SAME if answer != "(1, 2]"]  # it drops spaces and commas: "(12]"


@pytest.mark.parametrize(("answer", "gold"), DIFFERENT)
def test_a_different_answer_is_wrong(answer, gold):
    assert GRADER.canonical(answer, gold) == answer
    assert not GRADER.correct(f"\\boxed{{{answer}}}", gold)


@pytest.mark.parametrize(
    ("response", "answer"),
    [
        ("first $\\boxed{1}$, on reflection $\\boxed{2}$", "2"),  # the last box is the answer
        ("$\\boxed{\\boxed{\\frac{1}{2}}}$", "\\frac{1}{2}"),  # nested boxes
        ("$\\boxed{\\frac{a}{\\sqrt{b}}}$ at the end", "\\frac{a}{\\sqrt{b}}"),  # braces nested inside the box
        ("The final answer is $\\frac{3}{4}$.", "\\frac{3}{4}"),  # no box: the stated final answer
        ("I do not know.", None),
    ],
)
def test_the_final_answer_is_read_from_a_response(response, answer):
    assert GRADER(response) == answer


def test_the_reward_and_the_evaluation_grade_alike():
    reward = REWARDS.get("math_verify").build()
    completions = ["$\\boxed{\\dfrac{64}{5}}$", "$\\boxed{12.80}$", "$\\boxed{13}$", "nothing"]
    assert reward(completions, answer=["12.8"] * 4) == [1.0, 1.0, 0.0, 0.0]
    assert [GRADER.canonical(GRADER(c), "12.8") for c in completions] == ["12.8", "12.8", "13", None]
    assert GRADER.version.startswith("1+math-verify-0.9.0")  # in every evaluation's protocol (its fingerprint)


def test_an_evaluation_graded_by_math_verify_counts_equivalent_answers():
    from harness.config.components import EvalConfig
    from harness.evaluation.evaluate import _score

    cfg = EvalConfig(tasks=["t"], answer_extractor="math_verify", n_samples=3)
    out = {"results": {"t": {}}, "samples": {"t": [
        {"doc_id": 0, "target": "\\frac{1}{2}", "resps": [["$\\boxed{0.5}$", "$\\boxed{\\dfrac12}$", "$\\boxed{2}$"]]},
        {"doc_id": 1, "target": "(0,1]", "resps": [["$\\boxed{[0,1]}$", "$\\boxed{[0,1]}$", "$\\boxed{(0, 1]}$"]]},
    ]}}  # fmt: skip
    metrics, samples = _score(cfg, out)
    assert metrics["t"]["pass@1"] == pytest.approx(3 / 6)
    assert metrics["t"]["maj@3"] == 0.5  # question 0's vote is right (two equivalent answers agree), 1's is [0,1]
    assert samples[0]["answers"] == ["\\frac{1}{2}", "\\frac{1}{2}", "2"]
