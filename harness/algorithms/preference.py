"""Preference losses for `dpo` stages: one number per pair (or triple), from sequence log-probs.

Signature: `fn(batch: PairBatch, **args) -> (B,)` per-pair losses; the trainer averages them.
TRL's own DPO losses (`loss_type` in DPOArgs) are used as they are; these are the objectives TRL lacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.algorithms import PREFERENCE_LOSSES, torch

if TYPE_CHECKING:
    from torch import Tensor


@dataclass
class PairBatch:
    """Sequence-level quantities of B (prompt, chosen, rejected) pairs; all tensors are (B,)."""

    chosen_logps: Tensor
    """Sum over the chosen completion's tokens of log pi(token) under the policy (with gradient)."""
    rejected_logps: Tensor
    chosen_lengths: Tensor
    """Completion tokens of the chosen completion (float)."""
    rejected_lengths: Tensor
    ref_chosen_logps: Tensor | None = None
    """The same sums under the frozen reference model (no gradient); None for reference-free losses."""
    ref_rejected_logps: Tensor | None = None
    chosen_scores: Tensor | None = None
    """The judge's scalar score of each completion (the generate stage's labels)."""
    rejected_scores: Tensor | None = None
    baseline: Tensor | None = None
    """Mean judge score of all the completions sampled for the prompt (a value estimate of the sampler)."""
    gold_logps: Tensor | None = None
    """Sum of log pi over the gold (reference) solution's tokens, for triple losses."""
    gold_lengths: Tensor | None = None


def _require(batch: PairBatch, loss: str, **fields: str) -> None:
    """Raise if a loss needs batch fields that are None; `fields` maps field name -> what it is."""
    missing = [what for name, what in fields.items() if getattr(batch, name) is None]
    if missing:
        raise ValueError(f"{loss} needs {', '.join(missing)}, which the batch lacks")


@PREFERENCE_LOSSES.register("contrastive_preference")
def contrastive_preference(batch: PairBatch, *, alpha: float = 0.1, conservative: float = 1.0,
                           length_normalize: bool = False) -> Tensor:  # fmt: skip
    """CPL: -log sigmoid(alpha * s_w - conservative * alpha * s_l), s = sequence log pi (no reference).

    conservative (CPL's lambda) < 1 shrinks the push-down on the rejected completion, biasing the
    policy towards the preferred data. length_normalize divides each s by its token count.
    Departs from the paper: s sums over a whole completion, undiscounted, instead of over a
    segment of an MDP with a discount; the optional length normalisation is ours.

    >>> t = torch.tensor
    >>> loss = contrastive_preference(PairBatch(t([-2.0]), t([-4.0]), t([1.0]), t([1.0])), alpha=0.5)
    >>> round(loss.item(), 4)  # -log sigmoid(0.5 * -2 - 0.5 * -4) = -log sigmoid(1)
    0.3133
    """
    s_w, s_l = batch.chosen_logps, batch.rejected_logps  # (B,)
    if length_normalize:
        s_w, s_l = s_w / batch.chosen_lengths.clamp(min=1), s_l / batch.rejected_lengths.clamp(min=1)
    return -torch.nn.functional.logsigmoid(alpha * s_w - conservative * alpha * s_l)


@PREFERENCE_LOSSES.register("contrastive_pg")
def contrastive_pg(batch: PairBatch, *, beta: float = 0.1) -> Tensor:
    """CoPG: residual^2 / (2 * beta), residual = (r_w - r_l) - beta * (lr_w - lr_l), lr = log pi - log pi_ref.

    Its gradient is -residual * (grad log pi(y_w) - grad log pi(y_l)), so a descent step follows
    CoPG's update: it raises the completion whose judge score beats its regularised log-ratio, and
    stops where the score gap equals beta times the log-ratio gap. The loss is symmetric in the two
    completions: which one is "chosen" does not matter, only the scores do. The paper's constant
    factor in front of the gradient is folded into the learning rate.

    >>> t = torch.tensor
    >>> b = PairBatch(t([-1.0]), t([-2.0]), t([1.0]), t([1.0]), t([-1.5]), t([-2.0]), t([1.0]), t([0.0]))
    >>> contrastive_pg(b, beta=0.5).tolist()  # residual = 1 - 0.5 * (0.5 - 0) = 0.75; 0.75^2 / 1
    [0.5625]
    """
    _require(batch, "contrastive_pg", chosen_scores="chosen_scores", rejected_scores="rejected_scores",
             ref_chosen_logps="reference log-probs", ref_rejected_logps="reference log-probs")  # fmt: skip
    lr_w = batch.chosen_logps - batch.ref_chosen_logps  # (B,)
    lr_l = batch.rejected_logps - batch.ref_rejected_logps  # (B,)
    residual = (batch.chosen_scores - batch.rejected_scores) - beta * (lr_w - lr_l)
    return residual**2 / (2 * beta)


@PREFERENCE_LOSSES.register("triple_preference")
def triple_preference(batch: PairBatch, *, beta: float = 2.0, alpha: float = 1.0) -> Tensor:
    """TPO: -log sigmoid(beta * (s_w / len_w - s_l / len_l)) + alpha * (-s_gold / len_gold), no reference.

    A length-normalised preference term on (chosen, rejected) plus the per-token NLL of the gold
    solution, so the policy imitates the gold while learning the preference. Departs from the
    paper: the gold is the dataset's reference solution, and no target margin is subtracted.

    >>> t = torch.tensor
    >>> b = PairBatch(t([-2.0]), t([-6.0]), t([2.0]), t([3.0]), gold_logps=t([-3.0]), gold_lengths=t([3.0]))
    >>> round(triple_preference(b).item(), 4)  # -log sigmoid(2 * (-1 - -2)) + 1 * (3 / 3)
    1.1269
    """
    _require(batch, "triple_preference", gold_logps="gold log-probs", gold_lengths="gold lengths")
    s_w = batch.chosen_logps / batch.chosen_lengths.clamp(min=1)  # (B,)
    s_l = batch.rejected_logps / batch.rejected_lengths.clamp(min=1)  # (B,)
    nll = -batch.gold_logps / batch.gold_lengths.clamp(min=1)  # (B,)
    return -torch.nn.functional.logsigmoid(beta * (s_w - s_l)) + alpha * nll


@PREFERENCE_LOSSES.register("offline_advantage_pg")
def offline_advantage_pg(batch: PairBatch, *, epsilon: float = 0.2, keep_negative: bool = False) -> Tensor:
    """A-LoL: per completion -max(A, 0) * w * log pi, A = score - baseline, w = clip(pi / pi_ref, 1 - eps, 1 + eps).

    Both completions of a pair are offline samples; the pair's loss is the mean of their two
    losses. Samples worse than the prompt's baseline are dropped (zero loss, zero gradient). w is a
    detached sequence-level importance weight, so the gradient is -A+ * w * grad log pi.
    Departs from the paper: the baseline is the mean judge score of the prompt's sampled
    completions, not a value head trained on the reference policy; a completion whose weight is
    clipped still gets a gradient (scaled by 1 +- eps). keep_negative=True keeps A < 0 (plain advantage-weighted
    offline PG, the ablation of A-LoL's filter).

    >>> t = torch.tensor
    >>> b = PairBatch(t([-1.0]), t([-2.0]), t([1.0]), t([1.0]), t([-1.0]), t([-2.0]), t([1.0]), t([0.0]), t([0.5]))
    >>> offline_advantage_pg(b).tolist()  # A = (0.5, -0.5) -> (0.5, 0); w = 1; mean(-0.5 * -1, 0)
    [0.25]
    """
    _require(batch, "offline_advantage_pg", chosen_scores="chosen_scores", rejected_scores="rejected_scores",
             baseline="baseline", ref_chosen_logps="reference log-probs", ref_rejected_logps="reference log-probs")  # fmt: skip

    def one(logps: Tensor, ref_logps: Tensor, scores: Tensor) -> Tensor:
        advantage = scores - batch.baseline  # (B,)
        advantage = advantage if keep_negative else advantage.clamp(min=0)
        weight = torch.exp(logps - ref_logps).clamp(1 - epsilon, 1 + epsilon).detach()  # (B,)
        return -advantage * weight * logps

    chosen = one(batch.chosen_logps, batch.ref_chosen_logps, batch.chosen_scores)
    rejected = one(batch.rejected_logps, batch.ref_rejected_logps, batch.rejected_scores)
    return (chosen + rejected) / 2
