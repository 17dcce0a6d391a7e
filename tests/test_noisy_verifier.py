"""The noisy verifier and its backward correction (harness/rewards/noisy.py), worked by hand."""

from __future__ import annotations

import pytest

from harness.rewards import REWARDS
from harness.rewards.noisy import flipped


def build(**args):
    return REWARDS.get("noisy_verifier").build(**args)


def test_without_noise_it_is_the_verifier():
    fn = build()
    assert fn(["46", "45", "x"], answer=["46", "46", "46"]) == [1.0, 0.0, 0.0]


def test_each_verdict_flips_as_its_hash_says_at_the_rate_of_its_side():
    fp, fn_rate = 0.3, 0.2
    fn = build(false_positive=fp, false_negative=fn_rate, seed=7)
    completions = [str(n) for n in range(200)]
    got = fn(completions, answer=["46"] * 200)
    want = [float((c == "46") != flipped(7, c, "46", fn_rate if c == "46" else fp)) for c in completions]
    assert got == want
    passed_wrong = sum(g for g, c in zip(got, completions, strict=True) if c != "46") / 199
    assert 0.2 < passed_wrong < 0.4  # about false_positive of the wrong answers pass
    assert fn(completions, answer=["46"] * 200) == got  # the same text, the same verdict
    assert build(false_positive=fp, false_negative=fn_rate, seed=8)(completions, answer=["46"] * 200) != got


def test_backward_correction_is_unbiased_over_the_channel():
    """E[r_hat | clean r] = r: averaged over many texts of each kind, the corrected reward returns the clean one."""
    fp, fn_rate = 0.25, 0.15
    fn = build(false_positive=fp, false_negative=fn_rate, correct="backward")
    right = fn(["46"] * 1, answer=["46"])  # one text: its own fixed flip
    assert right[0] in (pytest.approx((1 - fp) / (1 - fp - fn_rate)), pytest.approx(-fp / (1 - fp - fn_rate)))
    wrong = fn([f"{n} " for n in range(4000)], answer=["x"] * 4000)  # 4000 different wrong texts
    assert sum(wrong) / len(wrong) == pytest.approx(0.0, abs=0.03)
    rights = [build(false_positive=fp, false_negative=fn_rate, correct="backward", seed=s)(["46"], answer=["46"])[0]
              for s in range(4000)]  # fmt: skip
    assert sum(rights) / len(rights) == pytest.approx(1.0, abs=0.03)


@pytest.mark.parametrize(
    "args, message",
    [
        ({"false_positive": 0.6, "false_negative": 0.5}, "must stay below 1"),
        ({"false_negative": 1.0}, r"false_negative: a rate in \[0, 1\)"),
        ({"correct": "forward"}, "correct: 'forward' is not one of"),
        ({"verifier": "majority_vote"}, "must be a per-sample reward that reads the gold answer"),
    ],
)
def test_bad_arguments_are_refused_at_config_time(args, message):
    found = REWARDS.get("noisy_verifier").args_problem(args)
    assert found is not None and __import__("re").search(message, found[1]), found
