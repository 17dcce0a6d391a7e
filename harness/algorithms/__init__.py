"""The pieces of an RL objective, chosen by name in a stage's `objective:` (split as in verl's core_algos).

    rewards (harness/rewards/)  ->  advantage estimator  ->  policy loss (per token)  ->  aggregation
                                                              + auxiliary terms (per token, same aggregation)
    and, around them, an online data filter (filters.py): which prompt groups a step trains on

Each piece is a small pure function on tensors, registered here by name; harness/stages/trainers/grpo.py composes
them inside one TRL GRPOTrainer subclass. torch is imported on first use, so configs can be
checked against these registries without it.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.registry import Registry

ADVANTAGES: Registry = Registry("advantage estimator")
POLICY_LOSSES: Registry = Registry("policy loss")
AGGREGATIONS: Registry = Registry("loss aggregation")
AUX_TERMS: Registry = Registry("auxiliary loss term")
PREFERENCE_LOSSES: Registry = Registry("preference loss")
EXPERT_MIXES: Registry = Registry("expert mix")
ONLINE_FILTERS: Registry = Registry("online data filter")


class _LazyTorch:
    """`torch` imported when a piece first runs, not when the registries are read."""

    def __getattr__(self, name: str):
        import torch

        return getattr(torch, name)


torch = _LazyTorch()


@dataclass(frozen=True)
class Window:
    """The optimizer step a micro-batch belongs to, for normalising its loss.

    Aggregations divide by the size of the whole accumulation window, not of the micro-batch, so
    one step over a batch of 8 equals eight accumulated steps over batches of 1.
    """

    tokens: float
    """Completion tokens in the window, per process (DDP averages gradients over processes)."""
    sequences: int
    """Completions in the window, per process."""
    max_length: int
    """max_completion_length: the constant normaliser of `sequence_sum`."""


from harness.algorithms import advantages, aux, expert, filters, intuition, losses, preference, supervised  # noqa: E402,F401  (registers the pieces)
