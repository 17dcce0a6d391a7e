"""harness.evaluation.metrics: pass@k, maj@k and summarize against hand-computed numbers."""

from __future__ import annotations

from math import comb

import pytest

from harness.evaluation.metrics import maj_at_k, pass_at_k, pass_curve, summarize


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
        (5, 2, 1, 0.4),  # pass@1 = c/n
        (5, 1, 3, 0.6),  # 1 - C(4,3)/C(5,3) = 1 - 4/10
        (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
        (8, 3, 4, 1 - 5 / 70),  # 1 - C(5,4)/C(8,4)
        (4, 3, 2, 1.0),  # n - c = 1 < k: every 2-subset holds a correct sample
        (5, 0, 3, 0.0),  # c = 0
        (5, 5, 1, 1.0),  # c = n
        (5, 5, 5, 1.0),
        (1, 1, 1, 1.0),
        (1, 0, 1, 0.0),
    ],
)
def test_pass_at_k_hand_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


@pytest.mark.parametrize(("n", "k"), [(4, 5), (4, 0), (1, 2)])
def test_pass_at_k_outside_1_to_n_raises(n, k):
    with pytest.raises(ValueError, match=f"k={k}"):
        pass_at_k(n, 1, k)


def test_pass_at_k_matches_brute_force_over_subsets():
    # pass@k is the fraction of k-subsets holding at least one correct sample
    from itertools import combinations

    n, c = 6, 2
    samples = [1] * c + [0] * (n - c)
    for k in range(1, n + 1):
        subsets = list(combinations(samples, k))
        assert pass_at_k(n, c, k) == pytest.approx(sum(any(s) for s in subsets) / comb(n, k))


CORRECT = [
    [1, 0, 0, 0],  # c=1: pass@1..4 = 1/4, 1 - 3/6 = 1/2, 1 - 1/4 = 3/4, 1
    [1, 1, 0, 0],  # c=2: pass@1..4 = 1/2, 1 - 1/6 = 5/6, 1, 1
    [0, 0, 0, 0],  # c=0: 0 everywhere
]


def test_pass_curve_hand_values():
    curve = pass_curve(CORRECT)
    assert list(curve) == [1, 2, 3, 4]
    assert curve[1] == pytest.approx((1 / 4 + 1 / 2 + 0) / 3)
    assert curve[2] == pytest.approx((1 / 2 + 5 / 6 + 0) / 3)
    assert curve[3] == pytest.approx((3 / 4 + 1 + 0) / 3)
    assert curve[4] == pytest.approx((1 + 1 + 0) / 3)


def test_pass_curve_is_monotone_and_the_mean_of_per_question_values():
    table = [[1, 0, 1, 0, 0, 0, 1, 0], [0] * 8, [1] * 8, [0, 0, 0, 0, 0, 0, 0, 1]]
    curve = pass_curve(table)
    values = [curve[k] for k in range(1, 9)]
    assert all(a <= b + 1e-12 for a, b in zip(values, values[1:], strict=False))
    for k in range(1, 9):
        per_question = [pass_at_k(8, sum(row), k) for row in table]
        assert curve[k] == pytest.approx(sum(per_question) / len(table))
    assert curve[1] == pytest.approx((3 / 8 + 0 + 1 + 1 / 8) / 4)  # pass@1 is the mean accuracy


ANSWERS = [
    ["3", "3", "4", None],  # majority 3 == gold 3 -> 1
    ["5", "6", "6", "6"],  # majority 6 != gold 5 -> 0
    [None, None, None, None],  # no majority -> 0
    ["4", "3", "3", "4"],  # 4 and 3 tie; 4 seen first == gold 4 -> 1
]
GOLDS = ["3", "5", "1", "4"]


def test_maj_at_n_is_exact():
    assert maj_at_k(ANSWERS, GOLDS, k=4) == pytest.approx(2 / 4)


def test_maj_at_k_below_n_is_exact_on_unanimous_rows():
    answers = [["7"] * 4, ["2"] * 4]
    for k in (1, 2, 3):
        assert maj_at_k(answers, ["7", "9"], k) == pytest.approx(0.5)


def test_maj_at_k_is_deterministic_for_a_seed():
    assert maj_at_k(ANSWERS, GOLDS, k=2, seed=3) == maj_at_k(ANSWERS, GOLDS, k=2, seed=3)


def test_maj_at_1_estimates_accuracy():
    # maj@1 of one random sample is, in expectation, pass@1; with many draws it is close
    answers = [["1", "2", "2", "2"], ["1", "1", "1", "2"]]  # accuracy vs gold "1": 1/4 and 3/4
    assert maj_at_k(answers, ["1", "1"], k=1, draws=4000) == pytest.approx(0.5, abs=0.03)


def test_summarize_keys_and_values():
    answers = [
        ["1", "1", "2", None, "1", "3"],  # gold 1: correct 3 of 6; distinct answers {1, 2, 3}
        ["5", "5", "5", "5", "5", "5"],  # gold 4: correct 0 of 6; distinct answers {5}
    ]
    out = summarize(answers, ["1", "4"])
    assert {f"pass@{k}" for k in range(1, 7)} <= set(out)
    assert {k for k in out if k.startswith("maj@")} == {"maj@1", "maj@2", "maj@4", "maj@6"}
    assert out["samples_per_question"] == 6 and out["questions"] == 2
    assert out["pass@1"] == pytest.approx((3 / 6 + 0) / 2)
    assert out["avg@n"] == out["pass@1"]
    assert out["pass@6"] == pytest.approx((1 + 0) / 2)
    assert out["maj@6"] == pytest.approx((1 + 0) / 2)  # majority 1 (three votes) is right; 5 is wrong
    assert out["distinct_answers"] == pytest.approx((3 + 1) / 2)
    assert out["distinct_correct"] == pytest.approx((1 + 0) / 2)


def test_response_lengths_of_right_and_wrong_answers():
    answers, golds = [["1", "2", "1"], ["3", "4", "4"]], ["1", "4"]  # right: 1st, 3rd, 5th, 6th
    lengths = [[10, 40, 20], [60, 30, 50]]
    out = summarize(answers, golds, lengths=lengths)
    assert out["length/all"] == pytest.approx(210 / 6)
    assert out["length/correct"] == pytest.approx((10 + 20 + 30 + 50) / 4)
    assert out["length/wrong"] == pytest.approx((40 + 60) / 2)  # Dr. GRPO's claim is about this one
    everything_right = summarize([["1", "1"]], ["1"], lengths=[[5, 7]])
    assert everything_right["length/correct"] == 6 and "length/wrong" not in everything_right
    assert "length/all" not in summarize(answers, golds)  # no tokenizer, no lengths


def test_the_sampling_error_over_questions():
    even = summarize([["1", "2"]] * 40, ["1"] * 40)  # every question half right: pass@1 cannot move
    assert even["stderr/pass@1"] == 0.0
    mixed = summarize([["1", "1"]] * 20 + [["2", "2"]] * 20, ["1"] * 40)  # half the questions right
    assert mixed["stderr/pass@1"] == pytest.approx(0.5 / 40**0.5, rel=0.15)  # the analytic sd / sqrt(n)


@pytest.mark.parametrize(("n", "majs"), [(1, {1}), (3, {1, 2, 3}), (8, {1, 2, 4, 8})])
def test_summarize_maj_ks(n, majs):
    out = summarize([["1"] * n], ["1"])
    assert {int(k[4:]) for k in out if k.startswith("maj@")} == majs
    assert all(out[f"maj@{k}"] == 1.0 for k in majs)


def test_ragged_input_raises():
    with pytest.raises(ValueError, match="same number of samples"):
        pass_curve([[1, 0], [1]])
    with pytest.raises(ValueError, match="same number of samples"):
        summarize([["1", "2"], ["1"]], ["1", "1"])
    with pytest.raises(ValueError):
        pass_curve([])


def test_answers_and_golds_must_align():
    with pytest.raises(ValueError):
        summarize([["1", "2"]], ["1", "2"])


def test_pass_at_k_to_256_hand_values():
    # one correct sample in 256: pass@k = k/256; none: 0; 255 correct: 1 from k = 2 on
    assert pass_at_k(256, 1, 1) == 1 / 256
    assert pass_at_k(256, 1, 128) == 0.5
    assert pass_at_k(256, 1, 256) == 1.0
    assert pass_at_k(256, 0, 256) == 0.0
    assert pass_at_k(256, 255, 1) == 255 / 256 and pass_at_k(256, 255, 2) == 1.0


def test_distinct_n_hand_values():
    from harness.evaluation.metrics import distinct_n

    # tokens: 46 ; 51 | 46 ; 51 | 47 ; 52 -> 9 unigrams, 5 distinct; bigrams 6, 4 distinct
    responses = ["46;51", "46;51", "47;52"]
    assert distinct_n(responses, 1) == 5 / 9
    assert distinct_n(responses, 2) == 4 / 6
    assert distinct_n(["same", "same"], 1) == 0.5
    assert distinct_n(["", ""], 2) == 0.0


def test_summarize_adds_diversity_when_given_responses():
    answers = [["51", "51", "52"], ["7", "8", None]]
    golds = ["51", "8"]
    responses = [["46;51", "46;51", "47;52"], ["x 7", "y 8", "z"]]
    m = summarize(answers, golds, responses)
    assert m["distinct_answers"] == (2 + 2) / 2
    assert m["distinct_correct"] == (1 + 1) / 2
    assert m["distinct_1"] == pytest.approx((5 / 9 + 5 / 5) / 2)
    assert "distinct_1" not in summarize(answers, golds)
