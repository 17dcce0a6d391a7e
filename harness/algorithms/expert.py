"""Expert mixes: how a GRPO stage weighs its RL loss against an SFT loss on expert demonstrations.

Signature: `fn(*, step, max_steps, group_accuracy (B,), expert_logps (B, Te), **args) ->
(rl_weight (B,), sft_weight (B,), token_weight (B, Te))`, where group_accuracy is the fraction of
correct rollouts in each sample's group and expert_logps the detached log-probs of the expert
tokens under the current policy (0 at padding). The trainer multiplies each sample's RL loss by
rl_weight and adds sft_weight times its expert NLL, weighted per token by token_weight (and masked).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.algorithms import EXPERT_MIXES, torch

if TYPE_CHECKING:
    from torch import Tensor

TOKEN_WEIGHTINGS = ("p_one_minus_p", "none")


def linear_decay(step: int, start: float, end: float, steps: int) -> float:
    """start at step 0, moving linearly to end at `steps`, and end from then on.

    >>> linear_decay(5, 0.5, 0.0, 10), linear_decay(20, 0.5, 0.0, 10)
    (0.25, 0.0)
    """
    if steps <= 0:
        return end
    frac = min(max(step, 0) / steps, 1.0)
    return start + (end - start) * frac


@EXPERT_MIXES.register("scheduled_sft")
def scheduled_sft(*, step: int, max_steps: int, group_accuracy: Tensor, expert_logps: Tensor, mu_start: float = 0.5,
                  mu_end: float = 0.0, decay_steps: int | None = None,
                  token_weighting: str = "p_one_minus_p") -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """CHORD: loss = (1 - mu) * RL + mu * SFT for every sample, mu decaying linearly over decay_steps.

    token_weighting="p_one_minus_p" weighs each expert token by p * (1 - p), p = pi(token): tokens
    the policy already finds certain (p ~ 1) or very unlikely (p ~ 0) move it little, which keeps
    SFT from overriding what RL learned. Padding (log p = 0) gets weight 0. decay_steps=None decays
    over the whole run (max_steps). Departs from the paper: the schedule is linear only.

    >>> rl, sft, tok = scheduled_sft(step=0, max_steps=10, group_accuracy=torch.zeros(1),
    ...                              expert_logps=torch.log(torch.tensor([[0.5, 1.0]])))
    >>> rl.tolist(), sft.tolist(), tok.tolist()
    ([0.5], [0.5], [[0.25, 0.0]])
    """
    if token_weighting not in TOKEN_WEIGHTINGS:
        raise ValueError(f"token_weighting must be one of {TOKEN_WEIGHTINGS}, got {token_weighting!r}")
    mu = linear_decay(step, mu_start, mu_end, max_steps if decay_steps is None else decay_steps)
    sft_weight = torch.full_like(group_accuracy, mu, dtype=torch.float32)  # (B,)
    if token_weighting == "none":
        token_weight = torch.ones_like(expert_logps)  # (B, Te)
    else:
        p = torch.exp(expert_logps.detach())  # (B, Te)
        token_weight = p * (1 - p)
    return 1 - sft_weight, sft_weight, token_weight


@EXPERT_MIXES.register("accuracy_switch")
def accuracy_switch(*, step: int, max_steps: int, group_accuracy: Tensor, expert_logps: Tensor,
                    threshold: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """HPT: pure SFT on samples whose group accuracy is <= threshold, pure RL on the others.

    With threshold 0 the policy learns from the demonstration only where every rollout failed
    (ReLIFT's rule, applied per batch rather than from a collected buffer of hard questions).

    >>> rl, sft, tok = accuracy_switch(step=0, max_steps=10, group_accuracy=torch.tensor([0.0, 0.5]),
    ...                                expert_logps=torch.zeros(2, 1))
    >>> rl.tolist(), sft.tolist(), tok.tolist()
    ([0.0, 1.0], [1.0, 0.0], [[1.0], [1.0]])
    """
    sft_weight = (group_accuracy <= threshold).float()  # (B,)
    return 1 - sft_weight, sft_weight, torch.ones_like(expert_logps)
