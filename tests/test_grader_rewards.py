"""harness.grader and harness.rewards on hand-written completions; the registry's refusals."""

from __future__ import annotations

import pytest

from harness.grader import extract_answer, is_correct, majority_answer, normalize
from harness.registry import Registry, UnknownComponentError
from harness.rewards import REWARDS

# --------------------------------------------------------------------------- grader


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", "42"),  # a bare toy completion is its own answer
        ("12+30 is 42, so the answer is \\boxed{42}.", "42"),
        ("first \\boxed{3}, then on reflection \\boxed{5}", "5"),  # the last box wins
        ("\\boxed{7} although 8 and 9 were also mentioned", "7"),  # a box beats a later bare number
        ("\\boxed{x+1}", "x+1"),  # non-numeric boxed answers are kept as text
        ("I have 3 apples and 5 pears, so 8 fruits in total", "8"),  # the last number in wordy text
        ("The total is 1,234 dollars.", "1234"),  # thousands separators dropped
        ("the answer is 42.", "42"),  # a full stop is not a decimal point
        ("so it is 42.0", "42"),  # integral float -> integer
        ("half of 5 is 2.50", "2.5"),
        ("5 - 12 = -7", "-7"),
        ("x = \\boxed{-3}", "-3"),
        ("so \\boxed{\\frac{1}{2}} in the end", "\\frac{1}{2}"),  # nested braces inside the box
        ("no idea", None),
        ("", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(" 1,000 ", "1000"), ("42.0", "42"), ("42.", "42"), ("-0.50", "-0.5"), ("1 000", "1000"), ("abc", "abc")],
)
def test_normalize(raw, expected):
    assert normalize(raw) == expected


@pytest.mark.parametrize(
    ("completion", "gold", "expected"),
    [
        ("42", "42", True),
        ("42.0", "42", True),
        ("the sum is 1,042", "1042", True),
        ("\\boxed{42}", "42.0", True),  # the gold answer is normalised too
        ("41", 41, True),  # gold given as an int (a dataset column)
        ("-3", "3", False),
        ("3", "-3", False),
        ("43", "42", False),
        ("dunno", "42", False),  # no answer is never correct
    ],
)
def test_is_correct(completion, gold, expected):
    assert is_correct(completion, gold) is expected


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        (["3", "4", "4"], "4"),
        (["3", None, "4", "4", "3"], "3"),  # 3 and 4 tie at two; 3 was seen first
        (["4", "3", "3", "4"], "4"),
        ([None, None, "5"], "5"),  # None never wins, however many
        ([None, None], None),
        ([], None),
    ],
)
def test_majority_answer(answers, expected):
    assert majority_answer(answers) == expected


# --------------------------------------------------------------------------- rewards


def build(name: str):
    return REWARDS.get(name).build()


# rewards with an argument that has no default (learned_reward loads its model on first call only)
REQUIRED_ARGS = {"length": {"max_chars": 100}, "learned_reward": {"model": "unused"}, "matches": {"pattern": "x"},
                 "pairwise_winrate": {"preference": "right_then_cyclic"}, "process_reward": {"model": "unused"},
                 "bootstrapped_winrate": {"preference": "right_then_cyclic"},
                 "worst_group_reward": {"model": "unused"},
                 "judge": {"model": "unused", "template": "{prompt}{completion}"},  # loads its model on first call only
                 "judge_with_reference": {"model": "unused", "template": "{prompt}{completion}{answer}"},
                 "pairwise_judge": {"model": "unused", "template": "{prompt}{a}{b}"},
                 "user_mixture": {"groups": [{"name": "g", "users": 1, "rewards": [{"name": "format"}]}]}}  # fmt: skip


@pytest.mark.parametrize("name", REWARDS.names())
def test_built_reward_is_named_after_its_registry_name(name):
    assert REWARDS.get(name).build(**REQUIRED_ARGS.get(name, {})).__name__ == name


def test_builtin_rewards_are_registered_with_their_flags():
    assert {"exact_match", "format", "majority_vote"} <= set(REWARDS.names())
    assert REWARDS.get("exact_match").needs_labels is True
    assert REWARDS.get("format").needs_labels is False
    assert REWARDS.get("majority_vote").needs_labels is False
    assert REWARDS.get("majority_vote").group_aware is True
    assert REWARDS.get("exact_match").group_aware is False


def test_exact_match():
    fn = build("exact_match")
    completions = ["41", "the sum is 42", "\\boxed{42.0}", "no idea"]
    # extra dataset columns (id, prompt) are accepted and ignored
    assert fn(completions, answer=["42"] * 4, id=[0, 0, 1, 1], prompt=["p"] * 4) == [0.0, 1.0, 1.0, 0.0]


def test_exact_match_refuses_misaligned_columns():
    with pytest.raises(ValueError):
        build("exact_match")(["1", "2"], answer=["1"])


def test_format():
    fn = build("format")
    assert fn(["42", "dunno", "\\boxed{x}", "it is -3.5 I think"], answer=["0"] * 4) == [1.0, 0.0, 1.0, 1.0]


def test_majority_vote_with_interleaved_groups():
    # group 0 at positions 0, 2, 4 answers 3, 3, 4 -> majority 3
    # group 1 at positions 1, 3, 5 answers 7, 8, 7 -> majority 7
    fn = build("majority_vote")
    completions = ["3", "7", "3", "8", "4", "7"]
    assert fn(completions, id=[0, 1, 0, 1, 0, 1]) == [1.0, 1.0, 1.0, 0.0, 0.0, 1.0]


def test_majority_vote_with_string_ids_and_wordy_completions():
    fn = build("majority_vote")
    completions = ["it is 5", "\\boxed{5}", "5.0", "6", "so 6", "hmm"]
    # q1: 5, 5, 5 -> all agree; q2: 6, 6, None -> the one without an answer gets 0
    assert fn(completions, id=["q1", "q1", "q1", "q2", "q2", "q2"]) == [1.0, 1.0, 1.0, 1.0, 1.0, 0.0]


def test_majority_vote_group_where_nobody_answered():
    fn = build("majority_vote")
    # group 0: nobody answered -> all 0; group 1: a lone answer is its own majority
    assert fn(["x", "y", "5"], id=[0, 0, 1]) == [0.0, 0.0, 1.0]


def test_majority_vote_tie_goes_to_the_first_seen_answer():
    fn = build("majority_vote")
    # 4 and 3 tie at two each; 4 was seen first
    assert fn(["4", "3", "3", "4"], id=[9, 9, 9, 9]) == [1.0, 0.0, 0.0, 1.0]
    # None is skipped when deciding who was first: 3 comes before 4
    assert fn(["none", "3", "4"], id=[1, 1, 1]) == [0.0, 1.0, 0.0]


def test_majority_vote_ignores_gold_answers():
    fn = build("majority_vote")
    # the majority (7) is wrong against the gold 8, and is still rewarded: the reward is label-free
    assert fn(["7", "7", "8"], id=[0, 0, 0], answer=["8", "8", "8"]) == [1.0, 1.0, 0.0]


# --------------------------------------------------------------------------- registry


def test_unknown_reward_suggests_the_near_miss():
    with pytest.raises(UnknownComponentError) as info:
        REWARDS.get("majority_vot")
    msg = str(info.value)
    assert msg.startswith("unknown reward 'majority_vot'; did you mean 'majority_vote'?")
    assert "exact_match" in msg  # the known names are listed
    assert isinstance(info.value, KeyError)


def test_unknown_reward_far_from_any_name_has_no_hint():
    msg = REWARDS.unknown_message("zzzzzz")
    assert "did you mean" not in msg
    assert "unknown reward 'zzzzzz'" in msg


def test_registry_register_get_names_contains():
    reg: Registry[int] = Registry("widget")
    reg.register("b")(2)
    reg.register("a")(1)
    assert reg.get("a") == 1 and reg.get("b") == 2
    assert reg.names() == ["a", "b"]
    assert "a" in reg and "c" not in reg
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("a")(3)
    assert reg.get("a") == 1  # the failed second registration did not replace the first
    with pytest.raises(UnknownComponentError, match="unknown widget 'c'"):
        reg.get("c")


def test_weighted_sum_of_rewards_and_the_per_sample_flag():
    from harness.rewards import weighted_sum

    terms = [(1.0, REWARDS.get("exact_match").build()), (-0.5, REWARDS.get("length").build(max_chars=4))]
    # "4": 1 - 0.5 * (1 - 1/4) = 0.625; "44": 0 - 0.5 * (1 - 2/4) = -0.25
    assert weighted_sum(terms, ["4", "44"], answer=["4", "4"]) == pytest.approx([0.625, -0.25])
    assert REWARDS.get("exact_match").per_sample and not REWARDS.get("majority_vote").per_sample
    assert not REWARDS.get("learned_reward").per_sample and not REWARDS.get("refined_label").per_sample
