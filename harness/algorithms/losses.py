"""Policy losses (per token) and the aggregations that reduce them to one number.

Policy loss: `fn(logps, old_logps, advantages, mask, **args) -> (B, T)` where logps are the
current policy's log-probs of the sampled tokens (B, T), old_logps those of the policy that
sampled them, advantages (B, 1) or (B, T). A loss that needs the mean over the whole vocabulary of
the log-probs at each completion position declares `needs_vocab_mean = True` and also receives
`vocab_mean_logps` / `old_vocab_mean_logps` (B, T): (B, T, V) log-probs are never kept (at 150k-token
vocabularies a generation batch of them would not fit on any GPU).

Aggregation: `fn(per_token, mask, window) -> scalar`, normalised by the accumulation window
(harness.algorithms.Window) so gradient accumulation does not change the gradient.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.algorithms import AGGREGATIONS, POLICY_LOSSES, Window, torch

if TYPE_CHECKING:
    from torch import Tensor


@POLICY_LOSSES.register("clipped_surrogate")
def clipped_surrogate(logps: Tensor, old_logps: Tensor, advantages: Tensor, mask: Tensor, *,
                      epsilon_low: float = 0.2, epsilon_high: float | None = None, **_) -> Tensor:  # fmt: skip
    """PPO/GRPO: -min(rho * A, clip(rho, 1 - eps_low, 1 + eps_high) * A), rho = pi / pi_old per token.

    epsilon_high > epsilon_low is DAPO's clip-higher: more room to raise unlikely tokens; for
    NGRPO's asymmetric clipping it is looser for positive than for negative advantages.

    >>> lp, old = torch.log(torch.tensor([[0.5, 0.9]])), torch.log(torch.tensor([[0.25, 0.9]]))
    >>> clipped_surrogate(lp, old, torch.tensor([[1.0]]), torch.ones(1, 2)).tolist()  # rho = 2 -> clipped at 1.2
    [[-1.2000000476837158, -1.0]]
    """
    high = epsilon_low if epsilon_high is None else epsilon_high
    ratio = torch.exp(logps - old_logps)
    clipped = torch.clamp(ratio, 1 - epsilon_low, 1 + high)
    return -torch.min(ratio * advantages, clipped * advantages)


@POLICY_LOSSES.register("reinforce")
def reinforce(logps: Tensor, old_logps: Tensor, advantages: Tensor, mask: Tensor, **_) -> Tensor:
    """Plain policy gradient: -A * log pi (no ratio, no clipping); exact for on-policy samples.

    >>> reinforce(torch.tensor([[-1.0, -2.0]]), None, torch.tensor([[-1.0]]), None).tolist()
    [[-1.0, -2.0]]
    """
    return -advantages * logps


@POLICY_LOSSES.register("value_regression")
def value_regression(logps: Tensor, old_logps: Tensor, advantages: Tensor, mask: Tensor, *,
                     vocab_mean_logps: Tensor, old_vocab_mean_logps: Tensor, rho: float = 1.0, **_) -> Tensor:  # fmt: skip
    """ROVER-style: regress Q(s_t, a_t) = rho * (log pi - log pi_old)(a_t | s_t) onto the value of the
    uniformly random policy, target_t = A + mean_a' Q(s_{t+1}, a') (stop-gradient; 0 after the last token).

    mean_a' Q(s, a') = rho * (mean_a' log pi(a'|s) - mean_a' log pi_old(a'|s)): the per-position means over the
    vocabulary (`vocab_mean_logps`, `old_vocab_mean_logps`, (B, T)) are all it needs.
    A (the centred outcome reward) is credited to every token. With one update per generated batch
    pi_old = pi, so the next-state term is 0 in value and the loss pulls Q towards A.
    Returns (Q_t - target_t)^2 per token.

    >>> lp = torch.log(torch.tensor([[0.5, 0.5]]))
    >>> value_regression(lp, lp, torch.tensor([[1.0]]), torch.ones(1, 2), vocab_mean_logps=lp,
    ...                  old_vocab_mean_logps=lp).tolist()
    [[1.0, 1.0]]
    """
    q = rho * (logps - old_logps)  # (B, T)
    q_next_all = rho * (vocab_mean_logps - old_vocab_mean_logps).detach()  # (B, T): mean over the vocabulary
    has_next = torch.zeros_like(mask)
    has_next[:, :-1] = mask[:, 1:]
    next_value = torch.zeros_like(q)
    next_value[:, :-1] = q_next_all[:, 1:]
    target = advantages + next_value * has_next
    return (q - target) ** 2


value_regression.needs_vocab_mean = True


@AGGREGATIONS.register("token_mean")
def token_mean(per_token: Tensor, mask: Tensor, window: Window) -> Tensor:
    """Every completion token of the step weighs the same: sum(loss * mask) / tokens in the window.

    Long completions count more (DAPO's token-level loss).

    >>> token_mean(torch.tensor([[1.0, 3.0], [2.0, 0.0]]), torch.tensor([[1, 1], [1, 0]]), Window(3, 2, 2)).item()
    2.0
    """
    return (per_token * mask).sum() / max(window.tokens, 1.0)


@AGGREGATIONS.register("sequence_mean")
def sequence_mean(per_token: Tensor, mask: Tensor, window: Window) -> Tensor:
    """Every completion weighs the same: mean over completions of their own token mean (GRPO's original).

    >>> sequence_mean(torch.tensor([[1.0, 3.0], [2.0, 0.0]]), torch.tensor([[1, 1], [1, 0]]), Window(3, 2, 2)).item()
    2.0
    """
    per_seq = (per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1)
    return per_seq.sum() / max(window.sequences, 1)


@AGGREGATIONS.register("sequence_sum")
def sequence_sum(per_token: Tensor, mask: Tensor, window: Window) -> Tensor:
    """Dr. GRPO: token sums divided by a constant (completions x max_completion_length), no length bias.

    >>> sequence_sum(torch.tensor([[1.0, 3.0], [2.0, 0.0]]), torch.tensor([[1, 1], [1, 0]]), Window(3, 2, 4)).item()
    0.75
    """
    return (per_token * mask).sum() / max(window.sequences * window.max_length, 1)
