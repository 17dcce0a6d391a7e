"""Online data filters: which prompt groups a GRPO step trains on, decided from their rewards during training.

A group whose completions all score the same has zero advantage under group-relative estimators: it costs a
generation and teaches nothing. An online filter (a stage's `objective.online_filter`) drops such groups after
they are scored and draws more prompts to refill the batch (DAPO's dynamic sampling), or keeps only prompts of a
target pass rate (a difficulty curriculum); the trainer (harness/stages/trainers/online.py) does the drawing, the
per-prompt statistics, the logging and the checkpointing. Each filter here is a factory
`fn(*, max_rounds, **args) -> GroupFilter`, its `keep` a pure function of a group's rewards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.algorithms import ONLINE_FILTERS, torch

if TYPE_CHECKING:
    from collections.abc import Callable

    from torch import Tensor


@dataclass(frozen=True)
class GroupFilter:
    keep: Callable[[Tensor], Tensor]
    """(G, n) rewards of G groups of n completions -> (G,) bool: the groups to train on. NaN (unscorable)
    rewards are left out of a group's statistics."""
    max_rounds: int
    """Extra generation rounds a step may spend refilling its batch; after them, dropped groups fill what is left
    (they train with their zero advantages, as unfiltered GRPO would)."""
    skip_seen: bool = False
    """Refills pass over prompts whose last group this filter dropped (per-prompt statistics), drawing them only
    when nothing else is left."""
    replay_below: float | None = None
    """Replay of hard prompts: refills draw first the prompts whose last group this filter kept with a mean reward
    below this (a pass rate, for 0/1 rewards), until a later group of theirs scores at or above it; None: no replay."""


def _stats(rewards: Tensor) -> tuple[Tensor, Tensor]:
    """Per group: the mean and the spread (max - min) of its scorable rewards (0 and 0 for a group with none)."""
    ok = ~torch.isnan(rewards)
    filled_low = torch.where(ok, rewards, torch.full_like(rewards, float("inf")))
    filled_high = torch.where(ok, rewards, torch.full_like(rewards, float("-inf")))
    count, zero = ok.sum(1), torch.zeros_like(rewards[:, 0])
    spread = torch.where(count > 0, filled_high.max(1).values - filled_low.min(1).values, zero)
    mean = torch.where(count > 0, torch.where(ok, rewards, torch.zeros_like(rewards)).sum(1) / count.clamp(min=1), zero)
    return mean, spread


def _replay(replay_below: float | None) -> float | None:
    if replay_below is not None and not isinstance(replay_below, int | float):
        raise ValueError(f"replay_below: a number (a mean reward) or null, got {replay_below!r}")
    return replay_below


def _rounds(max_rounds: int) -> int:
    if not 0 <= max_rounds <= 100:
        raise ValueError(f"max_rounds: in 0..100, got {max_rounds}")
    return max_rounds


@ONLINE_FILTERS.register("varied_groups")
def varied_groups(*, max_rounds: int = 3, min_spread: float = 0.0, skip_seen: bool = False,
                  replay_below: float | None = None) -> GroupFilter:  # fmt: skip
    """DAPO's dynamic sampling: keep a group whose rewards differ (max - min > min_spread); a group all right or all
    wrong is dropped and replaced by a fresh prompt's group.

    >>> f = varied_groups()
    >>> f.keep(torch.tensor([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0], [float("nan"), 1.0]])).tolist()
    [False, True, False, False]
    """
    if min_spread < 0:
        raise ValueError(f"min_spread: at least 0, got {min_spread}")

    def keep(rewards: Tensor) -> Tensor:
        return _stats(rewards)[1] > min_spread

    return GroupFilter(keep, _rounds(max_rounds), skip_seen, _replay(replay_below))


@ONLINE_FILTERS.register("pass_rate_band")
def pass_rate_band(*, max_rounds: int = 3, low: float = 0.0, high: float = 1.0, skip_seen: bool = False,
                   replay_below: float | None = None) -> GroupFilter:  # fmt: skip
    """A difficulty curriculum: keep a group whose mean reward (its pass rate, for 0/1 rewards) lies in
    [low, high]; prompts too easy or too hard for the policy now are dropped.

    >>> pass_rate_band(low=0.25, high=0.75).keep(torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0],
    ...                                                        [0.0, 0.0, 0.0, 0.0]])).tolist()
    [True, True, False]
    """
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"low, high: 0 <= low <= high <= 1, got {low}, {high}")

    def keep(rewards: Tensor) -> Tensor:
        mean = _stats(rewards)[0]
        return (mean >= low) & (mean <= high)

    return GroupFilter(keep, _rounds(max_rounds), skip_seen, _replay(replay_below))
