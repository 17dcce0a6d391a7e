"""Auxiliary loss terms, added to the policy loss and reduced by the stage's aggregation.

Signature: `fn(inputs: AuxInputs, **args) -> (B, T)` per-token loss contributions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.algorithms import AUX_TERMS, torch

if TYPE_CHECKING:
    from torch import Tensor


@dataclass
class AuxInputs:
    logps: Tensor
    """(B, T) log-probs of the sampled tokens under the current policy (with gradient)."""
    entropies: Tensor
    """(B, T) entropy of the current policy at each completion position (with gradient)."""
    ref_logps: Tensor | None = None
    """(B, T) log-probs under the frozen reference model (present when kl_to_reference is used)."""


@AUX_TERMS.register("entropy_bonus")
def entropy_bonus(inputs: AuxInputs, *, coef: float) -> Tensor:
    """-coef * H_t: rewards spreading probability (exploration; EVOL-RL, 1-shot RLVR).

    >>> entropy_bonus(AuxInputs(None, torch.tensor([[0.5, 1.0]])), coef=0.5).tolist()
    [[-0.25, -0.5]]
    """
    return -coef * inputs.entropies


@AUX_TERMS.register("entropy_band")
def entropy_band(inputs: AuxInputs, *, low: float, high: float, coef: float) -> Tensor:
    """coef * (relu(low - H_t) + relu(H_t - high)): keeps token entropy inside [low, high] (SPINE).

    >>> h = torch.tensor([[0.25, 0.5, 2.0]])
    >>> entropy_band(AuxInputs(None, h), low=0.5, high=1.0, coef=2.0).tolist()
    [[0.5, 0.0, 2.0]]
    """
    h = inputs.entropies
    return coef * (torch.relu(low - h) + torch.relu(h - high))


@AUX_TERMS.register("kl_to_reference")
def kl_to_reference(inputs: AuxInputs, *, coef: float) -> Tensor:
    """coef * KL(pi || pi_ref) per token, by the k3 estimator exp(d) - d - 1 with d = log pi_ref - log pi.

    >>> lp = torch.tensor([[0.0]])
    >>> kl_to_reference(AuxInputs(lp, None, lp), coef=1.0).tolist()
    [[0.0]]
    """
    if inputs.ref_logps is None:
        raise ValueError("kl_to_reference needs the reference model's log-probs")
    d = inputs.ref_logps - inputs.logps
    return coef * (torch.exp(d) - d - 1)
