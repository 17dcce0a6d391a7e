"""`search_answer`: one completion in a search protocol graded by its final answer, as the retrieval environment
(harness/environments/retrieval.py) grades an episode's. For self-search (SSRL): the policy writes its queries and
their results itself, no engine answers, and the answer after its last result is what counts."""

from __future__ import annotations

from harness.environments.retrieval import MATCHES, check_tags, golds, grade, protocol_of, written_answer
from harness.rewards import RewardFn, register_reward


def _check(result: list[str] | None = None, answer: list[str] | None = None, match: str = "exact") -> None:
    if match not in MATCHES:
        raise ValueError(f"match: one of {', '.join(MATCHES)}, got {match!r}")
    check_tags(result=result, answer=answer)


@register_reward("search_answer", needs_labels=True, validate=_check)
def search_answer(result: list[str] | None = None, answer: list[str] | None = None, match: str = "exact") -> RewardFn:
    """The grade of each completion's final answer against the row's gold answers (one, or a JSON list): `match`
    exact, em or f1 as the retrieval environment's; `result` and `answer` its tags (None: the toy protocol's `=...;`
    and a bare answer). No answer (answer tags that never close): 0.

    >>> search_answer()(["[zorba color]=zorba color red;red", "blue"], answer=["red", "red"])
    [1.0, 0.0]
    >>> tags = search_answer(["<information>", "</information>"], ["<answer>", "</answer>"], "em")
    >>> tags(["<search>q</search><information>x</information><answer>The Paris</answer>", "no answer"],
    ...      answer=['["paris"]', '["paris"]'])
    [1.0, 0.0]
    """
    _check(result, answer, match)
    protocol = protocol_of(None, result, answer, "")

    def reward(completions: list[str], answer: list, **_) -> list[float]:
        finals = [written_answer(c, protocol) for c in completions]
        return [0.0 if f is None else grade(f, golds(a), match) for f, a in zip(finals, answer, strict=True)]

    return reward
