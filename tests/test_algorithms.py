"""The objective pieces against hand-computed tensors, and the invariants the trainer relies on."""

from __future__ import annotations

import math

import pytest
import torch

from harness.algorithms import ADVANTAGES, AGGREGATIONS, AUX_TERMS, POLICY_LOSSES, Window
from harness.algorithms.aux import AuxInputs

# ----------------------------------------------------------------------------- advantages


def adv(name, rewards, group, lengths=None, **args):
    r = torch.tensor(rewards, dtype=torch.float32)
    return ADVANTAGES.get(name)(r, group, lengths, **args)


def test_group_mean_std_by_hand():
    # group [1, 0, 1, 0]: mean 0.5, unbiased std sqrt(1/3)
    a = adv("group_mean_std", [1, 0, 1, 0, 1, 1, 1, 1], 4)
    s = math.sqrt(1 / 3)
    expected = [0.5 / (s + 1e-4), -0.5 / (s + 1e-4)] * 2 + [0.0] * 4  # equal rewards: no signal
    torch.testing.assert_close(a, torch.tensor(expected))


def test_group_mean_std_skips_unscorable_and_filters_flat_groups():
    a = adv("group_mean_std", [1, 0, float("nan"), 0], 4)  # NaN: left out of the stats, advantage 0
    assert a[2] == 0 and a[0] > 0 > a[1] and a[1] == a[3]
    filtered = adv("group_mean_std", [1, 0.9, 1, 0.9, 1, 0, 1, 0], 4, min_std=0.1)
    assert filtered[:4].abs().sum() == 0 and filtered[4:].abs().sum() > 0


def test_group_mean_is_dr_grpo_and_batch_std_is_lite_ppo():
    torch.testing.assert_close(adv("group_mean", [1, 0, 0, 0], 4), torch.tensor([0.75, -0.25, -0.25, -0.25]))
    # groups [1, 0] and [1, 1]; batch std of [1, 0, 1, 1] = 0.5 (unbiased)
    torch.testing.assert_close(
        adv("group_mean_batch_std", [1, 0, 1, 1], 2, epsilon=0.0), torch.tensor([1.0, -1.0, 0.0, 0.0])
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"positive": 1.0, "negative": 0.0}, [1.0, 0.0, 1.0, 0.0]),  # PSR: only correct samples
        ({"positive": 0.0, "negative": 1.0}, [0.0, -1.0, 0.0, -1.0]),  # NSR: only incorrect samples
        ({"positive": 0.1, "negative": 1.0}, [0.1, -1.0, 0.1, -1.0]),  # W-REINFORCE
    ],
)
def test_sign_split_variants(args, expected):
    torch.testing.assert_close(adv("sign_split", [1, 0, 1, 0], 4, **args), torch.tensor(expected))


def test_raw_reward_has_no_baseline():
    torch.testing.assert_close(adv("reward", [1, 0, 0.5, 0], 2), torch.tensor([1.0, 0.0, 0.5, 0.0]))


def test_virtual_max_gives_all_wrong_groups_a_signal():
    assert adv("group_mean_std", [0, 0, 0], 3).abs().sum() == 0  # GRPO: nothing to learn
    # NGRPO: the group is [0, 0, 0, 1]: mean 0.25, unbiased std 0.5
    torch.testing.assert_close(adv("virtual_max", [0, 0, 0], 3, epsilon=0.0), torch.tensor([-0.5, -0.5, -0.5]))
    # a mixed group [1, 0] + virtual 1: mean 2/3, std sqrt(1/3)
    s = math.sqrt(1 / 3)
    torch.testing.assert_close(
        adv("virtual_max", [1, 0], 2, epsilon=0.0), torch.tensor([(1 - 2 / 3) / s, (0 - 2 / 3) / s])
    )


def test_canon_compares_the_length_halves_by_hand():
    # group [1, 0, 1, 1], lengths [6, 5, 2, 2]: the longer half {0, 1} scores 0.5, the shorter half {2, 3} scores 1
    # weight 1: A_i = r_i - mean(other half): long (1 - 1, 0 - 1), short (1 - 0.5, 1 - 0.5)
    lengths = torch.tensor([6, 5, 2, 2])
    torch.testing.assert_close(adv("canon", [1, 0, 1, 1], 4, lengths), torch.tensor([0.0, -1.0, 0.5, 0.5]))
    # weight 0.3: long (1 - 0.5) + 0.3 * (0.5 - 1) = 0.35, (0 - 0.5) - 0.15 = -0.65; short 0 + 0.3 * 0.5 = 0.15
    torch.testing.assert_close(
        adv("canon", [1, 0, 1, 1], 4, lengths, inter_weight=0.3), torch.tensor([0.35, -0.65, 0.15, 0.15])
    )
    # the halves come from the sort, not the order in the batch: the same group shuffled
    torch.testing.assert_close(
        adv("canon", [1, 1, 0, 1], 4, torch.tensor([2, 6, 5, 2])), torch.tensor([0.5, 0.0, -1.0, 0.5])
    )


def test_canon_at_weight_one_half_is_dr_grpo():
    rewards, lengths = [1, 0, 0, 1, 1, 0, 1, 1], torch.tensor([5, 2, 5, 2, 1, 1, 4, 4])
    torch.testing.assert_close(adv("canon", rewards, 4, lengths, inter_weight=0.5), adv("group_mean", rewards, 4))
    assert not torch.allclose(adv("canon", rewards, 4, lengths), adv("group_mean", rewards, 4))


def test_token_discounted_is_per_token():
    a = adv("token_discounted", [1, 0], 2, torch.tensor([3, 1]), gamma=0.5, base="group_mean")
    assert a.shape == (2, 3)
    torch.testing.assert_close(a, torch.tensor([[0.125, 0.25, 0.5], [-0.5, 0.0, 0.0]]))


def test_group_size_must_divide_the_batch():
    with pytest.raises(ValueError, match="groups of 4"):
        adv("group_mean_std", [1, 0, 1], 4)


# ----------------------------------------------------------------------------- policy losses


def test_clipped_surrogate_asymmetric_clip_by_hand():
    logps = torch.log(torch.tensor([[1.5, 0.5]]))  # old log-probs 0: ratios 1.5 and 0.5
    old = torch.zeros(1, 2)
    pos = POLICY_LOSSES.get("clipped_surrogate")(logps, old, torch.tensor([[1.0]]), None, epsilon_low=0.2,
                                                 epsilon_high=0.28)  # fmt: skip
    # A>0: min(1.5, 1.28) = 1.28 and min(0.5, 0.8) = 0.5
    torch.testing.assert_close(pos, torch.tensor([[-1.28, -0.5]]))
    neg = POLICY_LOSSES.get("clipped_surrogate")(logps, old, torch.tensor([[-1.0]]), None, epsilon_low=0.2,
                                                 epsilon_high=0.28)  # fmt: skip
    # A<0: min(-1.5, -1.28) = -1.5 and min(-0.5, -0.8) = -0.8
    torch.testing.assert_close(neg, torch.tensor([[1.5, 0.8]]))


def test_clipped_surrogate_on_policy_gradient_is_reinforce():
    theta = torch.tensor([[0.3, -0.2]], requires_grad=True)
    logps = torch.log_softmax(theta, -1)
    a = torch.tensor([[2.0]])
    g1 = torch.autograd.grad(POLICY_LOSSES.get("clipped_surrogate")(logps, logps.detach(), a, None).sum(), theta)[0]
    logps = torch.log_softmax(theta, -1)
    g2 = torch.autograd.grad(POLICY_LOSSES.get("reinforce")(logps, None, a, None).sum(), theta)[0]
    torch.testing.assert_close(g1, g2)


def test_value_regression_by_hand():
    # two tokens; at the second position the policy moved: mean over vocab of log-ratios = 0.5 * (log 2 + log 0.5) = 0
    # so use an asymmetric move: new [0.8, 0.2] vs old [0.5, 0.5]: mean log-ratio = 0.5 * (log 1.6 + log 0.4)
    vocab = torch.log(torch.tensor([[[0.5, 0.5], [0.8, 0.2]]]))
    old_vocab = torch.log(torch.tensor([[[0.5, 0.5], [0.5, 0.5]]]))
    tokens = torch.tensor([[0, 0]])
    logps = vocab.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    old = old_vocab.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    rho, a = 2.0, 1.0
    out = POLICY_LOSSES.get("value_regression")(logps, old, torch.tensor([[a]]), torch.ones(1, 2), rho=rho,
                                                vocab_mean_logps=vocab.mean(-1), old_vocab_mean_logps=old_vocab.mean(-1))  # fmt: skip
    next_v = rho * 0.5 * (math.log(1.6) + math.log(0.4))
    q = [0.0, rho * math.log(1.6)]
    expected = [(q[0] - (a + next_v)) ** 2, (q[1] - a) ** 2]  # the last token has no next state
    torch.testing.assert_close(out, torch.tensor([expected]))


# ----------------------------------------------------------------------------- aggregation


def _batch(seed=0, b=8, t=5, v=7):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, t, v, generator=g)
    tokens = torch.randint(0, v, (b, t), generator=g)
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    mask = (torch.arange(t).unsqueeze(0) < lengths.unsqueeze(1)).float()
    advantages = torch.randn(b, 1, generator=g)
    return logits, tokens, mask, advantages


def _grad(logits, tokens, mask, advantages, aggregation, window, loss="clipped_surrogate", rows=None):
    param = logits.clone().requires_grad_(True)
    rows = range(len(logits)) if rows is None else rows
    total = 0
    for chunk in rows:  # one micro-batch per chunk, gradients accumulated as the trainer does
        sl = chunk if isinstance(chunk, slice) else slice(chunk, chunk + 1)
        logps = torch.log_softmax(param[sl], -1).gather(-1, tokens[sl].unsqueeze(-1)).squeeze(-1)
        per_token = POLICY_LOSSES.get(loss)(logps, logps.detach(), advantages[sl], mask[sl])
        total = total + AGGREGATIONS.get(aggregation)(per_token, mask[sl], window)
    total.backward()
    return param.grad


@pytest.mark.parametrize("aggregation", ["token_mean", "sequence_mean", "sequence_sum"])
def test_batch_1_x_accumulation_8_equals_batch_8_x_accumulation_1(aggregation):
    logits, tokens, mask, advantages = _batch()
    window = Window(tokens=float(mask.sum()), sequences=8, max_length=5)
    full = _grad(logits, tokens, mask, advantages, aggregation, window, rows=[slice(0, 8)])
    accumulated = _grad(logits, tokens, mask, advantages, aggregation, window, rows=range(8))
    assert full.abs().sum() > 0
    torch.testing.assert_close(full, accumulated)


def test_token_mean_equals_sequence_mean_at_equal_lengths():
    logits, tokens, _, advantages = _batch()
    mask = torch.ones(8, 5)
    window = Window(tokens=40.0, sequences=8, max_length=5)
    token = _grad(logits, tokens, mask, advantages, "token_mean", window)
    seq = _grad(logits, tokens, mask, advantages, "sequence_mean", window)
    torch.testing.assert_close(token, seq)


def test_token_mean_differs_from_sequence_mean_at_unequal_lengths():
    per_token = torch.tensor([[1.0, 1.0, 1.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    w = Window(tokens=4.0, sequences=2, max_length=3)
    assert AGGREGATIONS.get("token_mean")(per_token, mask, w).item() == pytest.approx(7 / 4)
    assert AGGREGATIONS.get("sequence_mean")(per_token, mask, w).item() == pytest.approx((1 + 4) / 2)
    assert AGGREGATIONS.get("sequence_sum")(per_token, mask, w).item() == pytest.approx(7 / 6)


# ----------------------------------------------------------------------------- auxiliary terms


def test_entropy_bonus_gradient_raises_entropy():
    theta = torch.tensor([[[2.0, 0.0, -1.0]]], requires_grad=True)
    p = torch.softmax(theta, -1)
    h = -(p * torch.log(p)).sum(-1)
    loss = AUX_TERMS.get("entropy_bonus")(AuxInputs(None, h), coef=1.0).sum()
    loss.backward()
    stepped = theta - 0.5 * theta.grad
    p2 = torch.softmax(stepped, -1)
    assert -(p2 * torch.log(p2)).sum() > h.sum()


def test_entropy_band_is_zero_inside_and_linear_outside():
    h = torch.tensor([[0.2, 0.6, 1.5]])
    out = AUX_TERMS.get("entropy_band")(AuxInputs(None, h), low=0.4, high=1.0, coef=2.0)
    torch.testing.assert_close(out, torch.tensor([[0.4, 0.0, 1.0]]))


def test_kl_to_reference_k3_by_hand():
    logps, ref = torch.tensor([[math.log(0.5)]]), torch.tensor([[math.log(0.25)]])
    d = math.log(0.25) - math.log(0.5)
    out = AUX_TERMS.get("kl_to_reference")(AuxInputs(logps, None, ref), coef=0.1)
    torch.testing.assert_close(out, torch.tensor([[0.1 * (math.exp(d) - d - 1)]]))
    with pytest.raises(ValueError, match="reference"):
        AUX_TERMS.get("kl_to_reference")(AuxInputs(logps, None, None), coef=0.1)
