"""A population of synthetic labelers in groups with different preferences (MaxMin-RLHF's setting).

`user_mixture` scores each prompt as one labeler would: the prompt's labeler is drawn uniformly from all
labelers (seeded by the prompt's `id`), and scores with its group's rewards. Used as the judge of a
generate stage, it labels preference pairs the way a crowd with a majority and a minority would; the
pairs carry the labeler's index (`labeler`), never its group, so a learner must find the groups itself.
"""

from __future__ import annotations

import math
import random

from harness.rewards import REWARDS, RewardFn, register_reward, weighted_sum


class UserMixture:
    """Labelers 0..N-1, the first `users` of them in the first group, the next in the second, ..."""

    def __init__(self, groups: list[dict], seed: int = 0) -> None:
        self.seed, self.labeler_group, self.scorers = seed, [], []
        if not isinstance(groups, list) or not groups:
            raise ValueError(f"user_mixture: groups: expected a non-empty list of groups, got {groups!r:.80}")
        for i, g in enumerate(groups):
            name, users, rewards = _group(i, g)
            terms = []
            for j, r in enumerate(rewards):
                weight, factory, args = _term(f"groups.{i}.rewards.{j}", r)
                terms.append((weight, factory.build(**args)))
            self.labeler_group += [name] * users
            self.scorers.append(terms)
        self._group_index = [k for k, g in enumerate(groups) for _ in range(g["users"])]

    @property
    def n_users(self) -> int:
        return len(self.labeler_group)

    def labeler(self, prompt_id) -> int:
        """The labeler of a prompt: uniform over all labelers, the same on every call and process."""
        return random.Random(f"{self.seed}/{prompt_id}").randrange(self.n_users)

    def annotate(self, row: dict) -> dict:
        """What a generate stage records with the prompt's pair: who labeled it (not the group)."""
        return {"labeler": self.labeler(row["id"])}

    def __call__(self, completions: list[str], id: list, **columns) -> list[float]:  # noqa: A002 (TRL's column)
        out = [0.0] * len(completions)
        for k, terms in enumerate(self.scorers):  # each group scores the completions its labelers judge
            idx = [i for i, pid in enumerate(id) if self._group_index[self.labeler(pid)] == k]
            if not idx:
                continue
            cols = {key: [v[i] for i in idx] for key, v in columns.items() if isinstance(v, list) and len(v) == len(id)}
            for i, s in zip(idx, weighted_sum(terms, [completions[i] for i in idx], **cols), strict=True):
                out[i] = s
        return out


MAX_USERS = 100_000
"""Labelers in one group at most (each is a list entry)."""


def _group(i: int, g) -> tuple[str, int, list]:
    where = f"user_mixture: groups.{i}"
    if not isinstance(g, dict) or set(g) != {"name", "users", "rewards"}:
        got = sorted(map(str, g)) if isinstance(g, dict) else repr(g)[:80]
        raise ValueError(f"{where}: needs name, users and rewards (got {got})")
    name, users, rewards = g["name"], g["users"], g["rewards"]
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}.name: expected a non-empty string, got {name!r:.80}")
    if isinstance(users, bool) or not isinstance(users, int) or not 1 <= users <= MAX_USERS:
        raise ValueError(f"{where}.users: expected a whole number from 1 to {MAX_USERS}, got {users!r:.80}")
    if not isinstance(rewards, list) or not rewards:
        raise ValueError(f"{where}.rewards: expected a non-empty list of rewards, got {rewards!r:.80}")
    return name, users, rewards


def _term(where: str, r) -> tuple[float, object, dict]:
    """(weight, factory, args) of one reward of a group, checked as a stage's rewards are."""
    if not isinstance(r, dict) or not isinstance(r.get("name"), str) or set(r) - {"name", "weight", "args"}:
        raise ValueError(f"user_mixture: {where}: expected {{name, weight, args}} naming a reward, got {r!r:.80}")
    factory = REWARDS.get(r["name"])
    if not factory.per_sample:
        raise ValueError(f"user_mixture: {where}: {r['name']!r} is not a per-sample reward")
    weight, args = r.get("weight", 1.0), r.get("args") or {}
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
        raise ValueError(f"user_mixture: {where}.weight: expected a finite number, got {weight!r:.80}")
    if not isinstance(args, dict):
        raise ValueError(f"user_mixture: {where}.args: expected a mapping, got {args!r:.80}")
    if found := factory.args_problem(args):
        arg, problem = found
        raise ValueError(f"user_mixture: {where}.args{'.' + arg if arg else ''}: {problem}")
    return float(weight), factory, args


@register_reward("user_mixture", needs_labels=True, validate=lambda **a: UserMixture(**a))
def user_mixture(groups: list[dict], seed: int = 0) -> RewardFn:
    """The score of the prompt's labeler: r(x, y) = sum_j w_j r_j(y) over the rewards of the labeler's group.

    `groups`: [{name, users, rewards: [{name, weight, args}]}]; a prompt's labeler is uniform over the
    sum of `users`, so a group's share of the labels is its share of the labelers.

    >>> judge = user_mixture(groups=[{"name": "short", "users": 1, "rewards": [{"name": "length", "args": {"max_chars": 4}}]},
    ...                              {"name": "any", "users": 1, "rewards": [{"name": "format"}]}])
    >>> [judge.labeler_group[judge.labeler(i)] for i in range(4)]
    ['any', 'any', 'any', 'short']
    >>> judge(["7", "7", "ab", "ab"], id=[0, 1, 2, 3])
    [1.0, 1.0, 0.0, 0.5]
    """
    return UserMixture(groups, seed)
