"""Stateful rewards: objects that remember each sample across steps, and checkpoint that memory.

A call is one visit of every `id` in its batch. State is keyed by `str(id)`, as JSON object keys are
strings: an int id must find its entry again after a checkpoint round trip. `state_dict()` is plain
JSON; `load_state_dict(state_dict())` on a fresh object reproduces the next call exactly. Under
several processes wrap them in `across_processes`, which scores the whole batch on every process and
so keeps their states identical.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

from harness.grader import extract_answer, majority_answer, normalize
from harness.rewards import register_reward
from harness.rewards.group import group_indices

History = Sequence[Sequence]  # [(majority answer or None, its share of the group), ...], one per visit


def should_refine(history: History, label: str | None, consistency: int, min_rate: float) -> bool:
    """OLR's rule: the latest majority m replaces `label` when m != label, m was the majority in each of
    the last `consistency` visits, its share now is >= min_rate and did not fall since the visit before.

    >>> should_refine([("7", 0.50), ("7", 0.75)], "8", consistency=2, min_rate=0.5)
    True
    >>> should_refine([("7", 0.75), ("7", 0.50)], "8", consistency=2, min_rate=0.5)  # share fell
    False
    >>> should_refine([("9", 0.75), ("7", 0.75)], "8", consistency=2, min_rate=0.5)  # not stable yet
    False
    """
    vote, share = history[-1]
    if vote is None or vote == label or len(history) < consistency:
        return False
    stable = all(h[0] == vote for h in history[-consistency:])
    return stable and share >= min_rate and share >= history[-2][1]


class RefinedLabel:
    """Online label refinement under noisy labels: r_i = 1[ans_i == current label of i's id].

    The label starts as the row's (possibly wrong) `answer` and becomes the group's majority answer
    when `should_refine` says so; the reward uses the label after this visit's update.
    """

    def __init__(self, consistency: int = 2, min_rate: float = 0.5) -> None:
        if consistency < 2:
            raise ValueError(f"refined_label: consistency must be >= 2 (the slope needs two visits), got {consistency}")
        if not 0.0 < min_rate <= 1.0:
            raise ValueError(f"refined_label: min_rate must be in (0, 1], got {min_rate}")
        self.consistency, self.min_rate = consistency, min_rate
        self.ids: dict[str, dict] = {}
        """str(id) -> {"given": label from the data, "label": current label, "history": [[vote, share], ...]}"""

    def __call__(
        self,
        completions: list[str],
        id: list,  # noqa: A002 (dataset column)
        answer: list,
        log_metric: Callable | None = None,
        **_,
    ) -> list[float]:
        answers = [extract_answer(c) for c in completions]
        rewards = [0.0] * len(completions)
        for key, members in group_indices(id).items():
            given = answer[members[0]]
            entry = self.ids.setdefault(str(key), {"given": None if given is None else normalize(str(given))})
            entry.setdefault("label", entry["given"])
            history = entry.setdefault("history", [])
            group = [answers[i] for i in members]
            vote = majority_answer(group)
            history.append([vote, group.count(vote) / len(group) if vote is not None else 0.0])
            if should_refine(history, entry["label"], self.consistency, self.min_rate):
                entry["label"] = vote
            for i in members:
                rewards[i] = float(answers[i] is not None and answers[i] == entry["label"])
        if log_metric is not None:
            log_metric("refined_label/refined", float(sum(e["label"] != e["given"] for e in self.ids.values())))
        return rewards

    def state_dict(self) -> dict:
        return {"ids": copy.deepcopy(self.ids)}

    def load_state_dict(self, state: dict) -> None:
        self.ids = copy.deepcopy(state["ids"])


@register_reward("refined_label", needs_labels=True, group_aware=True, stateful=True)
def refined_label(consistency: int = 2, min_rate: float = 0.5) -> RefinedLabel:
    """Exact match against labels refined online to the policy's stable, rising majority (OLR)."""
    return RefinedLabel(consistency, min_rate)


def trajectory_distance(rates: Sequence[float], reference: Sequence[float]) -> float | None:
    """mean_k |rates_k - reference_k| over the visits k that have a reference; None if none has.

    >>> trajectory_distance([0.25, 0.5, 1.0], [0.5, 0.75])
    0.25
    >>> trajectory_distance([0.25], []) is None
    True
    """
    gaps = [abs(r - ref) for r, ref in zip(rates, reference, strict=False)]
    return sum(gaps) / len(gaps) if gaps else None


class TrajectoryVote:
    """TraPO's selection of unlabeled prompts whose learning trajectory follows the labeled ones.

    Per id, its pass rate at each visit: the share of its group correct against the gold answer
    (labeled rows) or agreeing with the group's majority (unlabeled rows). The reference trajectory is
    reference_k = mean over labeled ids of their rate at their k-th visit (this call included).
    Labeled rows: r = 1[ans == gold]. Unlabeled rows: r = 1[ans == majority] when their id has >=
    `min_visits` visits and `trajectory_distance` <= `tolerance`; otherwise None (no gradient).
    """

    def __init__(self, min_visits: int = 2, tolerance: float = 0.25) -> None:
        if min_visits < 1:
            raise ValueError(f"trajectory_vote: min_visits must be >= 1, got {min_visits}")
        if tolerance < 0:
            raise ValueError(f"trajectory_vote: tolerance must be >= 0, got {tolerance}")
        self.min_visits, self.tolerance = min_visits, tolerance
        self.rates: dict[str, list[float]] = {}
        self.labeled: dict[str, bool] = {}
        self._sums: list[float] = []  # sum and count of the labeled rates at visit k: the reference
        self._counts: list[int] = []

    def __call__(
        self,
        completions: list[str],
        id: list,  # noqa: A002 (dataset column)
        answer: list,
        labeled: list | None = None,
        log_metric: Callable | None = None,
        **_,
    ) -> list[float | None]:
        answers = [extract_answer(c) for c in completions]
        rewards: list[float | None] = [None] * len(completions)
        unlabeled: dict[str, tuple[list[int], list[bool]]] = {}
        for key, members in group_indices(id).items():
            first = members[0]
            is_labeled = bool(labeled[first]) if labeled is not None else answer[first] is not None
            if is_labeled and answer[first] is None:
                raise ValueError(f"trajectory_vote: row with id {key!r} is labeled but its answer is None")
            group = [answers[i] for i in members]
            target = normalize(str(answer[first])) if is_labeled else majority_answer(group)
            hits = [a is not None and a == target for a in group]
            self._visit(str(key), is_labeled, sum(hits) / len(hits))
            if is_labeled:
                for i, hit in zip(members, hits, strict=True):
                    rewards[i] = float(hit)
            else:
                unlabeled[str(key)] = (members, hits)
        reference = [s / n for s, n in zip(self._sums, self._counts, strict=True)]
        chosen = 0
        for key, (members, hits) in unlabeled.items():
            if self.selected(self.rates[key], reference):
                chosen += len(members)
                for i, hit in zip(members, hits, strict=True):
                    rewards[i] = float(hit)
        rows = sum(len(m) for m, _ in unlabeled.values())
        if log_metric is not None and rows:
            log_metric("trajectory_vote/selected", chosen / rows)
        return rewards

    def selected(self, rates: list[float], reference: list[float]) -> bool:
        distance = trajectory_distance(rates, reference)
        return len(rates) >= self.min_visits and distance is not None and distance <= self.tolerance

    def _visit(self, key: str, is_labeled: bool, rate: float) -> None:
        rates = self.rates.setdefault(key, [])
        self.labeled[key] = is_labeled
        if is_labeled:
            self._add_to_reference(len(rates), rate)
        rates.append(rate)

    def _add_to_reference(self, k: int, rate: float) -> None:
        if k == len(self._sums):
            self._sums.append(0.0)
            self._counts.append(0)
        self._sums[k] += rate
        self._counts[k] += 1

    def state_dict(self) -> dict:
        # the reference sums are kept as accumulated: re-summing in another order could move a
        # distance across `tolerance` by a rounding error, and a resumed run would select differently
        return {
            "rates": copy.deepcopy(self.rates),
            "labeled": dict(self.labeled),
            "reference_sums": list(self._sums),
            "reference_counts": list(self._counts),
        }

    def load_state_dict(self, state: dict) -> None:
        self.rates, self.labeled = copy.deepcopy(state["rates"]), dict(state["labeled"])
        self._sums, self._counts = list(state["reference_sums"]), list(state["reference_counts"])


@register_reward("trajectory_vote", needs_labels=True, group_aware=True, partial_labels=True, stateful=True)
def trajectory_vote(min_visits: int = 2, tolerance: float = 0.25) -> TrajectoryVote:
    """Gold reward on labeled rows; majority vote on the unlabeled rows whose pass-rate trajectory
    stays within `tolerance` of the labeled rows' (TraPO); None on the rest."""
    return TrajectoryVote(min_visits, tolerance)
