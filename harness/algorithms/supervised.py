"""Policy losses that treat each completion's verified outcome as a supervised label.

They read the outcome itself, not only an advantage: a loss that declares `needs_outcomes = True` also receives
  outcome         (B,)  the completion's reward (1 right, 0 wrong for a binary verifier),
  group_accuracy  (B,)  the mean reward of its prompt's group (the fraction right),
  group_size      int   completions per prompt,
from the GRPO trainer (harness/stages/trainers/grpo.py), which computes them over the whole gathered group before
the batch is split, so a group may span micro-batches. A completion counts as positive when its outcome exceeds
0.5. Same signature and shape as every policy loss (losses.py): `fn(logps, old_logps, advantages, mask, ...) ->
(B, T)`; the advantage is not used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.algorithms import POLICY_LOSSES, torch

if TYPE_CHECKING:
    from torch import Tensor


def _clamp_keep_grad(x: Tensor, low: float) -> Tensor:
    """max(x, low) in value, with the gradient of x everywhere (a straight-through clamp)."""
    return x + (x.clamp(min=low) - x).detach()


@POLICY_LOSSES.register("negative_aware")
def negative_aware(logps: Tensor, old_logps: Tensor, advantages: Tensor, mask: Tensor, *, outcome: Tensor,
                   group_accuracy: Tensor, group_size: int, neg_weight: float = 1.0, normalize: int = 1,
                   clamp_negative: float = 1.0, clamp_positive: float = 0.0, **_) -> Tensor:  # fmt: skip
    """NFT (negative-aware fine-tuning): likelihood on the positives, and on the negatives the likelihood of an
    implicit negative policy made of the same weights.

    With R_t = pi / pi_old per token and r the group's accuracy (clamped to [0.02, 0.98]):
      positive:  -log R_t
      negative:  -neg_weight * log((1 - r R_t) / (1 - r))     pi_neg = (pi_old - r pi) / (1 - r), as a ratio
    each log's argument clamped from below (clamp_positive, clamp_negative) in value only, its gradient kept.
    normalize = 1 weighs a prompt by (1 - r) (Dr. GRPO's advantage when on-policy), 2 by sqrt((1 - r) / r)
    (GRPO's), 0 not at all. neg_weight = 0 is RFT (rejection-sampling fine-tuning: the positives alone).

    On-policy (R = 1) the gradient is -(1 - r) grad log pi on a positive and r grad log pi on a negative with
    normalize = 1: outcome minus group mean, as the paper shows. Hand-checked: r = 0.5, a positive and a negative
    token, both at R = 1, give 0 loss each (log 1).

    >>> lp = torch.zeros(2, 1)
    >>> negative_aware(lp, lp, None, torch.ones(2, 1), outcome=torch.tensor([1.0, 0.0]),
    ...                group_accuracy=torch.tensor([0.5, 0.5]), group_size=2).tolist()
    [[-0.0], [-0.0]]
    """
    r = group_accuracy.float().clamp(0.02, 0.98).unsqueeze(1)  # (B, 1)
    positive = (outcome > 0.5).float().unsqueeze(1)
    ratio = torch.exp((logps - old_logps).clamp(max=10.0))
    pos_loss = -torch.log(_clamp_keep_grad(ratio, clamp_positive)) if clamp_positive > 0 else -(logps - old_logps)
    neg_loss = -torch.log(_clamp_keep_grad((1 - r * ratio) / (1 - r), abs(clamp_negative)))
    per_token = positive * pos_loss + (1 - positive) * neg_weight * neg_loss
    if normalize == 1:
        per_token = per_token * (1 - r)
    elif normalize == 2:
        per_token = per_token * ((1 - r) / r).sqrt()
    elif normalize != 0:
        raise ValueError(f"normalize must be 0, 1 or 2, got {normalize}")
    return per_token


negative_aware.needs_outcomes = True


@POLICY_LOSSES.register("implicit_bce")
def implicit_bce(logps: Tensor, old_logps: Tensor, advantages: Tensor, mask: Tensor, *, outcome: Tensor,
                 group_accuracy: Tensor, group_size: int, beta: float = 1.0, balanced: bool = True, **_) -> Tensor:  # fmt: skip
    """PACS: the outcome as the label of a classifier whose logit is the policy's own implicit reward.

    Score psi_i = beta * sum_t (log pi - log pi_old) over the completion's tokens; its leave-one-out centring in the
    group psi_i - mean_{j != i} psi_j is the logit; the loss is binary cross-entropy against the outcome, each
    completion weighted by the inverse frequency of its class in its group (sklearn's "balanced": n / (2 n_class),
    1 for a group all of one class) when `balanced`.

    The other completions' scores are taken at the sampling policy, where they are 0 (this loss is for one update
    per generated batch, the harness's default); their terms still reach psi_i through the centring, and are added
    exactly at that point: d/dpsi_i of the others' losses is c_i = -(S - w_i (1/2 - y_i)) / (n - 1), with
    S = sum_j w_j (1/2 - y_j) over the group (0 for a mixed group with balanced weights). So the loss of
    completion i is
        w_i BCE(psi_i, y_i) + c_i psi_i,
    the same value on each of its tokens: `sequence_mean` aggregation then gives the mean over completions, as PACS.

    Its on-policy gradient is a REINFORCE with advantage beta * w_i (y_i - 1/2) n / (n - 1): a group with one right
    answer in 8 pushes it by 8/(2*1) * 0.5 * 8/7 = 2.29 and each wrong one by -8/(2*7) * 0.5 * 8/7 = -0.33.

    >>> lp = torch.zeros(2, 1)
    >>> [round(v, 4) for v in implicit_bce(lp, lp, None, torch.ones(2, 1), outcome=torch.tensor([1.0, 0.0]),
    ...                                    group_accuracy=torch.tensor([0.5, 0.5]), group_size=2).flatten().tolist()]
    [0.6931, 0.6931]
    """
    y = (outcome > 0.5).float()
    p = group_accuracy.float()
    mixed = (p > 0) & (p < 1)
    if balanced:
        weight = torch.where(y > 0, 0.5 / p.clamp(min=1e-6), 0.5 / (1 - p).clamp(min=1e-6))
        weight = torch.where(mixed, weight, torch.ones_like(weight))
    else:
        weight = torch.ones_like(y)
    psi = beta * ((logps - old_logps) * mask).sum(-1)  # (B,)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(psi, y, reduction="none")
    # S: 0 for a balanced mixed group, n (1/2 - p) with unit weights
    cancels = mixed if balanced else torch.zeros_like(mixed)
    group_sum = torch.where(cancels, torch.zeros_like(p), group_size * (0.5 - p))
    coupling = -(group_sum - weight * (0.5 - y)) / max(group_size - 1, 1)
    per_seq = weight * bce + coupling * psi
    return per_seq.unsqueeze(1).expand_as(logps)


implicit_bce.needs_outcomes = True
