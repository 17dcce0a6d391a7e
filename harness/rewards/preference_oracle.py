"""General (possibly intransitive) preferences as a judge: each completion scored by its win-rate against the
other completions of its prompt under a pairwise preference oracle (DNO's batched on-policy labeling), or against one
completion of its group drawn as a temporary reference (Writing-Zero's BRPO).

A pairwise preference P(a > b | answer) is a registered function with P(a > b) + P(b > a) = 1; unlike a
reward, it need not come from any per-sample score (a Bradley-Terry model cannot represent a cycle). Used
as the judge of a generate stage, the win-rates pick each prompt's (most-winning, least-winning) pair.
"""

from __future__ import annotations

from harness.grader import extract_answer, is_correct
from harness.registry import Registry
from harness.rewards import RewardFn, register_reward
from harness.rewards.group import group_indices

PREFERENCES: Registry = Registry("pairwise preference")


@PREFERENCES.register("right_then_cyclic")
def right_then_cyclic(a: str, b: str, answer: str) -> float:
    """P(a > b): a right answer beats a wrong one, a wrong number beats no number, and between two wrong
    numbers n, m the preference is rock-paper-scissors on n - m mod 3 (1: a wins, 2: b wins, 0: a tie).

    >>> right_then_cyclic("5", "6", "5"), right_then_cyclic("7", "x", "5"), right_then_cyclic("7", "6", "5")
    (1.0, 1.0, 1.0)
    >>> right_then_cyclic("8", "7", "5"), right_then_cyclic("6", "8", "5"), right_then_cyclic("9", "6", "5")
    (1.0, 1.0, 0.5)
    """

    def tier(c: str) -> int:
        return 2 if is_correct(c, answer) else 1 if extract_answer(c) is not None else 0

    ta, tb = tier(a), tier(b)
    if ta != tb:
        return float(ta > tb)
    if ta != 1:
        return 0.5
    try:
        d = (int(extract_answer(a)) - int(extract_answer(b))) % 3
    except ValueError:
        return 0.5
    return {0: 0.5, 1: 1.0, 2: 0.0}[d]


@register_reward("pairwise_winrate", needs_labels=True, group_aware=True,
                 validate=lambda preference: PREFERENCES.get(preference))  # fmt: skip
def pairwise_winrate(preference: str) -> RewardFn:
    """r_i = mean over j in group(i), j != i of P(c_i > c_j), under the registered pairwise `preference`
    (groups share an `id`; a lone completion gets 0.5).

    >>> pairwise_winrate(preference="right_then_cyclic")(["5", "7", "8", "x"], id=[0] * 4, answer=["5"] * 4)
    [1.0, 0.3333333333333333, 0.6666666666666666, 0.0]
    """
    prefer = PREFERENCES.get(preference)

    def reward(completions: list[str], id: list, answer: list, **_) -> list[float]:  # noqa: A002 (dataset column)
        out = [0.5] * len(completions)
        for members in group_indices(id).values():
            for i in members:
                others = [j for j in members if j != i]
                if others:
                    out[i] = sum(prefer(completions[i], completions[j], answer[i]) for j in others) / len(others)
        return out

    return reward


def reference_index(group: list[str], key) -> int:
    """The bootstrapped reference of a group: an index drawn from a hash of the group's key and its completions, so
    the draw is the same on every process and after a resume, and differs between groups and steps.

    >>> reference_index(["5", "7"], 0) == reference_index(["5", "7"], 0), 0 <= reference_index(["a", "b", "c"], 3) < 3
    (True, True)
    """
    import hashlib

    digest = hashlib.sha256(repr((key, group)).encode()).digest()
    return int.from_bytes(digest[:8], "big") % len(group)


@register_reward("bootstrapped_winrate", needs_labels=True, group_aware=True,
                 validate=lambda preference: PREFERENCES.get(preference))  # fmt: skip
def bootstrapped_winrate(preference: str) -> RewardFn:
    """BRPO (Writing-Zero): r_i = P(c_i > c_ref) under the registered pairwise `preference`, where c_ref is one
    completion of i's group drawn as a temporary reference (`reference_index`); the reference itself gets 0.5.
    Against `pairwise_winrate`'s mean over the whole group: one judgement per completion, the reference-free
    pairwise reward's cost at paper scale (a generative judge per pair).

    >>> r = bootstrapped_winrate(preference="right_then_cyclic")
    >>> group = ["5", "7", "8", "x"]  # answer 5; group 1 draws "8": 5 beats it, 7 loses (7-8 = 2 mod 3), x loses
    >>> group[reference_index(group, 1)], r(group, id=[1] * 4, answer=["5"] * 4)
    ('8', [1.0, 0.0, 0.5, 0.0])
    >>> group[reference_index(group, 0)], r(group, id=[0] * 4, answer=["5"] * 4)  # group 0 draws the right one
    ('5', [0.5, 0.0, 0.0, 0.0])
    """
    prefer = PREFERENCES.get(preference)

    def reward(completions: list[str], id: list, answer: list, **_) -> list[float]:  # noqa: A002 (dataset column)
        out = [0.5] * len(completions)
        for key, members in group_indices(id).items():
            ref = members[reference_index([completions[i] for i in members], key)]
            for i in members:
                if i != ref:
                    out[i] = prefer(completions[i], completions[ref], answer[i])
        return out

    return reward
