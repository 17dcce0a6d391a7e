"""Group-aware rewards: a completion is scored against the other completions of its prompt."""

from __future__ import annotations

from collections import defaultdict

from harness.grader import extract_answer, majority_answer
from harness.rewards import RewardFn, register_reward


@register_reward("majority_vote", needs_labels=False, group_aware=True)
def majority_vote() -> RewardFn:
    """Label-free pseudo-reward of test-time RL: r_i = 1[ans_i == majority answer of i's group].

    Groups are the completions sharing an `id`. A completion with no answer gets 0, and so does
    every completion of a group where nobody answered.

    >>> majority_vote()(["3", "4", "4", "7", "7", "x"], id=[0, 0, 0, 1, 1, 1])
    [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    """

    def reward(completions: list[str], id: list, **_) -> list[float]:  # noqa: A002 (dataset column)
        answers = [extract_answer(c) for c in completions]
        groups: dict[object, list[int]] = defaultdict(list)
        for i, key in enumerate(id):
            groups[key].append(i)
        rewards = [0.0] * len(completions)
        for members in groups.values():
            vote = majority_answer([answers[i] for i in members])
            for i in members:
                rewards[i] = float(vote is not None and answers[i] == vote)
        return rewards

    return reward
