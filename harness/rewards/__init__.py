"""Reward functions, chosen by name in a stage's `rewards:` list.

A registered reward is a factory: `REWARDS.get(name).build(**args)` returns a TRL reward function
`(completions, **columns) -> list[float]` (columns: every dataset column, e.g. `answer`, `id`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.registry import Registry

RewardFn = Callable[..., list[float]]


@dataclass(frozen=True)
class RewardFactory:
    build: Callable[..., RewardFn]
    needs_labels: bool
    """Reads the gold `answer` column; refused on the unlabeled split."""
    group_aware: bool = False
    """Depends on the other completions of the same prompt (grouped by the `id` column)."""


REWARDS: Registry[RewardFactory] = Registry("reward")


def register_reward(name: str, *, needs_labels: bool, group_aware: bool = False):
    """Register a reward factory under `name`; the built function is named after it for logs."""

    def add(build: Callable[..., RewardFn]) -> Callable[..., RewardFn]:
        def named_build(**args) -> RewardFn:
            fn = build(**args)
            fn.__name__ = name
            return fn

        REWARDS.register(name)(RewardFactory(named_build, needs_labels, group_aware))
        return build

    return add


from harness.rewards import basic, group  # noqa: E402,F401  (registers the built-in rewards)
