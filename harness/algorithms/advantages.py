"""Advantage estimators: rewards of a whole generation batch -> one advantage per completion or per token.

Signature: `fn(rewards, group_size, lengths, **args)`, with `rewards` (N,) over all processes,
grouped in consecutive blocks of `group_size` (TRL's layout), NaN for a completion no reward
could score; `lengths` (N,) completion lengths in tokens. Returns (N,) or, for per-token
estimators, (N, max(lengths)). Unscorable completions get advantage 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.algorithms import ADVANTAGES, torch

if TYPE_CHECKING:
    from torch import Tensor


def _groups(rewards: Tensor, group_size: int) -> Tensor:
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    return rewards.view(-1, group_size)  # (G, n)


def _nanstd(x: Tensor, dim: int | None = None) -> Tensor:
    """Unbiased std ignoring NaN (as TRL's nanstd): sqrt(sum (x - mean)^2 / (count - 1))."""
    mean = torch.nanmean(x, dim=dim, keepdim=dim is not None)
    count = (~torch.isnan(x)).sum(dim=dim) if dim is not None else (~torch.isnan(x)).sum()
    var = torch.nansum((x - mean) ** 2, dim=dim) / (count - 1).clamp(min=1)
    return var.sqrt()


def _finish(adv: Tensor) -> Tensor:
    return torch.nan_to_num(adv.reshape(-1), nan=0.0)


@ADVANTAGES.register("group_mean_std")
def group_mean_std(rewards: Tensor, group_size: int, lengths: Tensor | None = None, *,
                   epsilon: float = 1e-4, min_std: float = 0.0) -> Tensor:  # fmt: skip
    """GRPO: A_i = (r_i - mean_group) / (std_group + epsilon).

    Groups whose reward std is below `min_std` get A = 0 (RLPR's filter of prompts that carry
    no signal; 0 keeps every group).

    >>> group_mean_std(torch.tensor([1.0, 0.0, 0.0, 0.0]), 4).round(decimals=3).tolist()
    [1.5, -0.5, -0.5, -0.5]
    """
    g = _groups(rewards, group_size)
    std = _nanstd(g, dim=1).unsqueeze(1)
    adv = (g - torch.nanmean(g, dim=1, keepdim=True)) / (std + epsilon)
    if min_std > 0:
        adv = torch.where(std < min_std, torch.zeros_like(adv), adv)
    return _finish(adv)


@ADVANTAGES.register("group_mean")
def group_mean(rewards: Tensor, group_size: int, lengths: Tensor | None = None) -> Tensor:
    """Dr. GRPO: A_i = r_i - mean_group (no division by the std, which favours easy and hard prompts).

    >>> group_mean(torch.tensor([1.0, 0.0, 0.0, 0.0]), 4).tolist()
    [0.75, -0.25, -0.25, -0.25]
    """
    g = _groups(rewards, group_size)
    return _finish(g - torch.nanmean(g, dim=1, keepdim=True))


@ADVANTAGES.register("group_mean_batch_std")
def group_mean_batch_std(rewards: Tensor, group_size: int, lengths: Tensor | None = None, *,
                         epsilon: float = 1e-4) -> Tensor:  # fmt: skip
    """Lite PPO: A_i = (r_i - mean_group) / (std_batch + epsilon), the std over the whole batch.

    >>> group_mean_batch_std(torch.tensor([1.0, 0.0, 1.0, 1.0]), 2).round(decimals=3).tolist()
    [1.0, -1.0, 0.0, 0.0]
    """
    g = _groups(rewards, group_size)
    return _finish((g - torch.nanmean(g, dim=1, keepdim=True)) / (_nanstd(rewards) + epsilon))


@ADVANTAGES.register("reward")
def raw_reward(rewards: Tensor, group_size: int, lengths: Tensor | None = None) -> Tensor:
    """REINFORCE without a baseline: A_i = r_i.

    >>> raw_reward(torch.tensor([1.0, 0.0]), 2).tolist()
    [1.0, 0.0]
    """
    return _finish(rewards.clone())


@ADVANTAGES.register("sign_split")
def sign_split(rewards: Tensor, group_size: int, lengths: Tensor | None = None, *,
               positive: float = 1.0, negative: float = 1.0, threshold: float = 0.5) -> Tensor:  # fmt: skip
    """Positive and negative samples weighted apart, no baseline: A_i = +positive if r_i > threshold else -negative.

    positive=1, negative=0 reinforces only correct samples (PSR); positive=0, negative=1 only
    pushes down incorrect ones (NSR); positive=0.1, negative=1 is W-REINFORCE.

    >>> sign_split(torch.tensor([1.0, 0.0, 1.0]), 3, positive=0.5).tolist()
    [0.5, -1.0, 0.5]
    """
    adv = torch.where(rewards > threshold, torch.full_like(rewards, positive), torch.full_like(rewards, -negative))
    return _finish(torch.where(torch.isnan(rewards), rewards, adv))


@ADVANTAGES.register("virtual_max")
def virtual_max(rewards: Tensor, group_size: int, lengths: Tensor | None = None, *,
                max_reward: float = 1.0, epsilon: float = 1e-4) -> Tensor:  # fmt: skip
    """NGRPO: group mean and std computed as if one more sample with `max_reward` were in the group.

    An all-wrong group then gets negative advantages instead of none:
    A_i = (r_i - mean(r ∪ {max})) / (std(r ∪ {max}) + epsilon).

    >>> virtual_max(torch.tensor([0.0, 0.0, 0.0]), 3).round(decimals=3).tolist()
    [-0.5, -0.5, -0.5]
    """
    g = _groups(rewards, group_size)
    augmented = torch.cat([g, torch.full_like(g[:, :1], max_reward)], dim=1)  # (G, n+1)
    mean = torch.nanmean(augmented, dim=1, keepdim=True)
    std = _nanstd(augmented, dim=1).unsqueeze(1)
    return _finish((g - mean) / (std + epsilon))


@ADVANTAGES.register("token_discounted")
def token_discounted(rewards: Tensor, group_size: int, lengths: Tensor, *,
                     gamma: float = 0.95, base: str = "group_mean_std") -> Tensor:  # fmt: skip
    """Per-token advantages: the `base` estimator's A_i credited to token t as gamma^(L_i - 1 - t).

    The outcome arrives at the last token, so earlier tokens get discounted credit. (N, max L).

    >>> token_discounted(torch.tensor([1.0, 0.0]), 2, torch.tensor([2, 1]), gamma=0.5, base="group_mean").tolist()
    [[0.25, 0.5], [-0.5, 0.0]]
    """
    adv = ADVANTAGES.get(base)(rewards, group_size, lengths)  # (N,)
    t = torch.arange(int(lengths.max()), device=rewards.device).unsqueeze(0)  # (1, T)
    steps_to_end = lengths.unsqueeze(1) - 1 - t  # (N, T)
    credit = gamma ** steps_to_end.clamp(min=0).float()
    return torch.where(steps_to_end >= 0, adv.unsqueeze(1) * credit, torch.zeros(()))


@ADVANTAGES.register("canon")
def canon(rewards: Tensor, group_size: int, lengths: Tensor, *, inter_weight: float = 1.0) -> Tensor:
    """CANON on response length: each group sorted by length and cut into two halves (the shorter n // 2, the
    rest longer; equal lengths keep their order), S being a completion's half and S' the other, then
    A_i = (r_i - mean_S) + inter_weight * (mean_S - mean_S') (no division by the std, as Dr. GRPO).

    The first term picks the better completion within its half; the second rewards the half whose length trend
    scores better, without presuming which. inter_weight 1 gives A_i = r_i - mean_S' (the authors' default);
    1/2 gives Dr. GRPO's r_i - mean_group exactly (for an even group size), so above 1/2 it amplifies the trend.

    >>> canon(torch.tensor([1.0, 0.0, 1.0, 1.0]), 4, torch.tensor([6, 5, 2, 2])).tolist()
    [0.0, -1.0, 0.5, 0.5]
    """
    g = _groups(rewards, group_size)
    order = torch.argsort(lengths.view(-1, group_size), dim=1, stable=True)
    rank = torch.argsort(order, dim=1)  # position of each completion in its group's length order
    longer = rank >= group_size // 2  # (G, n)

    def half_mean(members: Tensor) -> Tensor:  # (G, 1): mean over the half's scored completions
        return torch.nanmean(torch.where(members, g, torch.full_like(g, float("nan"))), dim=1, keepdim=True)

    mean_long, mean_short = half_mean(longer), half_mean(~longer)
    own = torch.where(longer, mean_long, mean_short)
    other = torch.where(longer, mean_short, mean_long)
    return _finish((g - own) + inter_weight * (own - other))
