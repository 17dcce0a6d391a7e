"""Outcome-supervised policy losses (harness/algorithms/supervised.py): NFT's negative-aware loss and PACS's
implicit-reward cross-entropy, against hand-computed gradients and the papers' own group-coupled formulas, and
inside real TRL steps whose groups span micro-batches."""

from __future__ import annotations

import math

import pytest
import torch

from harness.algorithms import POLICY_LOSSES
from harness.config.stage import ObjectiveConfig, PieceSpec
from tests.test_grpo import stage, train_once

NFT = POLICY_LOSSES.get("negative_aware")
PACS = POLICY_LOSSES.get("implicit_bce")


def grad_of(loss_fn, logps, old, **kw):
    """d(sum of the per-token loss over the mask) / d logps."""
    lp = logps.clone().requires_grad_(True)
    mask = torch.ones_like(lp)
    (loss_fn(lp, old, None, mask, **kw) * mask).sum().backward()
    return lp.grad


# ---------------------------------------------------------------------------------------------- NFT


def test_nft_on_policy_gradient_is_outcome_minus_group_mean():
    """At R = 1 with normalize = 1: -(1 - r) on a positive's tokens, +r on a negative's (Dr. GRPO's advantage)."""
    old = torch.log(torch.tensor([[0.5, 0.25], [0.5, 0.25], [0.4, 0.1], [0.3, 0.3]]))
    outcome = torch.tensor([1.0, 0.0, 0.0, 0.0])
    acc = torch.full((4,), 0.25)
    g = grad_of(NFT, old, old, outcome=outcome, group_accuracy=acc, group_size=4)
    expected = torch.tensor([[-0.75, -0.75], [0.25, 0.25], [0.25, 0.25], [0.25, 0.25]])
    torch.testing.assert_close(g, expected)


def test_nft_off_policy_values_and_gradients_by_hand():
    """r = 0.25, a negative token at R = 1.5: (1 - 0.375) / 0.75 = 0.833 is clamped to 1 in value (loss 0), while
    its gradient stays d/dlogp of -log(proxy) at the clamp: r R / 1 = 0.375 (times 1 - r, times 1 / (1 - r)).
    A positive token at R = 0.5: loss -log 0.5 * 0.75, gradient -0.75."""
    old = torch.zeros(2, 1)
    logps = torch.tensor([[math.log(1.5)], [math.log(0.5)]])
    kw = dict(outcome=torch.tensor([0.0, 1.0]), group_accuracy=torch.full((2,), 0.25), group_size=8)
    loss = NFT(logps, old, None, torch.ones(2, 1), **kw)
    torch.testing.assert_close(loss, torch.tensor([[0.0], [0.75 * math.log(2)]]))
    torch.testing.assert_close(grad_of(NFT, logps, old, **kw), torch.tensor([[0.375], [-0.75]]))


def test_nft_negative_weight_zero_is_rft_and_normalize_two_is_grpo():
    old = torch.zeros(2, 1)
    kw = dict(outcome=torch.tensor([1.0, 0.0]), group_accuracy=torch.full((2,), 0.2), group_size=5)
    rft = grad_of(NFT, old, old, neg_weight=0.0, **kw)
    torch.testing.assert_close(rft, torch.tensor([[-0.8], [0.0]]))  # positives only
    grpo = grad_of(NFT, old, old, normalize=2, **kw)
    mu, std = 0.2, math.sqrt(0.2 * 0.8)
    torch.testing.assert_close(grpo, torch.tensor([[-(1 - mu) / std], [mu / std]]))
    with pytest.raises(ValueError, match="normalize"):
        NFT(old, old, None, torch.ones(2, 1), normalize=3, **kw)


# --------------------------------------------------------------------------------------------- PACS


def pacs_reference(logps, old, y, n, beta=1.0, balanced=True):
    """PACS as its authors write it, every completion's score live: leave-one-out centring of
    psi = beta * sum(log pi - log pi_old) in each group of n, BCE with logits against y, class-balanced weights per
    group (1 in a group of one class), mean over completions."""
    psi = beta * (logps - old).sum(-1).view(-1, n)
    yy = y.view(-1, n)
    logit = psi - (psi.sum(1, keepdim=True) - psi) / (n - 1)
    w = torch.ones_like(yy)
    if balanced:
        for g in range(len(yy)):
            pos = yy[g].sum()
            if 0 < pos < n:
                w[g] = torch.where(yy[g] > 0, n / (2 * pos), n / (2 * (n - pos)))
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logit, yy, reduction="none")
    return (w * bce).mean()


@pytest.mark.parametrize("balanced", [True, False])
def test_pacs_on_policy_gradient_equals_the_group_coupled_loss(balanced):
    """At the sampling policy the per-completion loss gives exactly the gradient of PACS's coupled objective:
    a mixed group (1 right of 4), a group all right, a group all wrong."""
    torch.manual_seed(0)
    n = 4
    old = torch.log(torch.rand(12, 3) * 0.9 + 0.05)
    y = torch.tensor([1.0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0])
    acc = y.view(-1, n).mean(1).repeat_interleave(n)
    mask = torch.ones_like(old)
    lp = old.clone().requires_grad_(True)
    per_token = PACS(lp, old, None, mask, outcome=y, group_accuracy=acc, group_size=n, beta=2.0, balanced=balanced)
    per_token[:, 0].mean().backward()  # sequence_mean of a constant per-token value
    ref_lp = old.clone().requires_grad_(True)
    pacs_reference(ref_lp, old, y, n, beta=2.0, balanced=balanced).backward()
    torch.testing.assert_close(lp.grad, ref_lp.grad)
    assert lp.grad[:4].abs().sum() > 0
    assert lp.grad[4:].abs().max() < 1e-7  # groups of one class: the centring leaves nothing to learn


def test_pacs_advantage_by_hand():
    """One right answer in 8, beta 1: the right one's tokens get -(8 / 2) * 0.5 * 8 / 7 = -16/7 per completion,
    each wrong one +(8 / 14) * 0.5 * 8 / 7 = 16/49 (then divided by the 8 completions of the mean)."""
    n = 8
    old = torch.zeros(n, 2)
    y = torch.tensor([1.0] + [0.0] * 7)
    g = grad_of(PACS, old, old, outcome=y, group_accuracy=torch.full((n,), 1 / 8), group_size=n)
    # grad_of sums over tokens: every token of a completion carries the completion's loss, so divide by 2 tokens
    torch.testing.assert_close(g[:, 0] / 2, torch.tensor([-16 / 7] + [16 / 49] * 7))


def test_pacs_value_off_policy():
    """psi = 2 * (log 0.6 - log 0.5) for a right answer in a group of 2 (one right): BCE(psi, 1) + c psi with
    c = -(0 - 1 * (0.5 - 1)) / 1 = -0.5."""
    old = torch.log(torch.tensor([[0.5], [0.5]]))
    lp = torch.log(torch.tensor([[0.6], [0.5]]))
    out = PACS(lp, old, None, torch.ones(2, 1), outcome=torch.tensor([1.0, 0.0]),
               group_accuracy=torch.full((2,), 0.5), group_size=2, beta=2.0)  # fmt: skip
    psi = 2 * math.log(0.6 / 0.5)
    expected = math.log1p(math.exp(-psi)) - 0.5 * psi
    assert out[0, 0].item() == pytest.approx(expected, rel=1e-5)
    assert out[1, 0].item() == pytest.approx(math.log(2), rel=1e-5)


# ------------------------------------------------------------------------------------ in real TRL steps


@pytest.mark.parametrize("name, aggregation", [("implicit_bce", "sequence_mean"), ("negative_aware", "sequence_sum")])
def test_groups_split_over_micro_batches_train_as_one_batch(world, tmp_path, name, aggregation):
    """The outcome and the group accuracy travel with each completion: 8 completions (2 groups of 4) as one batch
    or as 8 accumulated micro-batches of 1 (each group spread over 4) give the same SGD step."""
    root, _ = world
    objective = ObjectiveConfig(aggregation=aggregation, loss=PieceSpec(name=name))
    one = stage(objective, ("format",), per_device_train_batch_size=8, gradient_accumulation_steps=1)
    eight = stage(objective, ("format",), per_device_train_batch_size=1, gradient_accumulation_steps=8)
    trainer, before, after_one = train_once(root, tmp_path / "a", one)
    _, _, after_eight = train_once(root, tmp_path / "b", eight)
    assert sum((after_one[k] - before[k]).abs().sum().item() for k in before) > 0
    for k in before:
        torch.testing.assert_close(after_one[k], after_eight[k], rtol=1e-4, atol=1e-6, msg=k)
    assert "policy_loss" in {k for entry in trainer.state.log_history for k in entry}


def test_supplied_arguments_cannot_be_set_in_a_config(tmp_path):
    from harness.config.checks import _check_objective
    from harness.config.errors import ConfigError

    o = ObjectiveConfig(loss=PieceSpec(name="negative_aware", args={"group_size": 4}))
    with pytest.raises(ConfigError, match="supplied by the trainer"):
        _check_objective(o, tmp_path / "paper.yaml", "variants.x.stages.0.objective")
    _check_objective(ObjectiveConfig(loss=PieceSpec(name="implicit_bce", args={"beta": 2.0})), tmp_path / "p.yaml", "k")
