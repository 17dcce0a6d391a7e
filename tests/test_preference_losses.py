"""Preference losses (harness/algorithms/preference.py) against hand-computed numbers."""

from __future__ import annotations

import math

import pytest
import torch

from harness.algorithms import PREFERENCE_LOSSES
from harness.algorithms.preference import PairBatch


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def leaf(*values: float) -> torch.Tensor:
    return t(*values).requires_grad_()


def loss(name: str, batch: PairBatch, **args) -> torch.Tensor:
    return PREFERENCE_LOSSES.get(name)(batch, **args)


def test_all_registered():
    names = {"contrastive_preference", "contrastive_pg", "triple_preference", "offline_advantage_pg"}
    assert names <= set(PREFERENCE_LOSSES.names())


# ----------------------------------------------------------------------------- CPL


def test_cpl_by_hand():
    b = PairBatch(t(-2.0, -3.0), t(-4.0, -3.0), t(1.0, 1.0), t(1.0, 1.0))
    # pair 0: -log sigmoid(0.5 * (-2 - -4)) = log(1 + e^-1); pair 1: equal log-probs -> log 2
    out = loss("contrastive_preference", b, alpha=0.5)
    torch.testing.assert_close(out, t(0.31326168751822286, 0.6931471805599453))


def test_cpl_conservative_and_length_normalize():
    b = PairBatch(t(-2.0), t(-4.0), t(2.0), t(4.0))
    # lambda = 0.5: 0.5 * -2 - 0.5 * 0.5 * -4 = 0 -> log 2
    torch.testing.assert_close(loss("contrastive_preference", b, alpha=0.5, conservative=0.5), t(0.6931471805599453))
    # per token: s_w = -1, s_l = -1 -> log 2 (unnormalised it would be log(1 + e^-1) = 0.3133)
    torch.testing.assert_close(
        loss("contrastive_preference", b, alpha=0.5, length_normalize=True), t(0.6931471805599453)
    )


# ----------------------------------------------------------------------------- CoPG


def copg_batch(chosen, rejected, ref_chosen, ref_rejected, score_w, score_l) -> PairBatch:
    return PairBatch(chosen, rejected, t(1.0), t(1.0), t(ref_chosen), t(ref_rejected), t(score_w), t(score_l))


def test_copg_value_and_gradient_by_hand():
    chosen, rejected = leaf(-1.0), leaf(-3.0)
    # lr_w = -1 - -2 = 1, lr_l = -3 - -2 = -1; residual = (1 - 0) - 0.25 * (1 - -1) = 0.5
    out = loss("contrastive_pg", copg_batch(chosen, rejected, -2.0, -2.0, 1.0, 0.0), beta=0.25)
    torch.testing.assert_close(out, t(0.5))  # 0.5^2 / (2 * 0.25)
    out.sum().backward()
    torch.testing.assert_close(chosen.grad, t(-0.5))  # -residual * (+1)
    torch.testing.assert_close(rejected.grad, t(0.5))  # -residual * (-1)


def test_copg_is_at_rest_when_score_gap_matches_log_ratio_gap():
    chosen, rejected = leaf(-1.0), leaf(-3.0)
    # log-ratio gap 1 - -1 = 2; beta * 2 = 0.5 = score gap 0.75 - 0.25
    out = loss("contrastive_pg", copg_batch(chosen, rejected, -2.0, -2.0, 0.75, 0.25), beta=0.25)
    out.sum().backward()
    assert out.item() == 0 and chosen.grad.item() == 0 and rejected.grad.item() == 0


def test_copg_names_missing_inputs():
    b = PairBatch(t(-1.0), t(-2.0), t(1.0), t(1.0), t(-1.0), t(-2.0))
    with pytest.raises(ValueError, match="chosen_scores, rejected_scores"):
        loss("contrastive_pg", b)
    b = PairBatch(t(-1.0), t(-2.0), t(1.0), t(1.0), chosen_scores=t(1.0), rejected_scores=t(0.0))
    with pytest.raises(ValueError, match="reference log-probs"):
        loss("contrastive_pg", b)


# ----------------------------------------------------------------------------- TPO


def test_tpo_by_hand():
    b = PairBatch(t(-2.0), t(-6.0), t(2.0), t(3.0), gold_logps=t(-4.0), gold_lengths=t(2.0))
    # -log sigmoid(2 * (-1 - -2)) = log(1 + e^-2) = 0.126928; 0.5 * (4 / 2) = 1
    torch.testing.assert_close(loss("triple_preference", b, alpha=0.5), t(1.1269280110429725))


def test_tpo_reduces_to_gold_nll_when_chosen_equals_rejected():
    same, gold = leaf(-3.0), leaf(-4.0)
    b = PairBatch(same, same, t(3.0), t(3.0), gold_logps=gold, gold_lengths=t(2.0))
    out = loss("triple_preference", b, alpha=0.5)
    torch.testing.assert_close(out, t(math.log(2) + 1.0))  # log 2 (a constant) + 0.5 * 4 / 2
    out.sum().backward()
    torch.testing.assert_close(same.grad, t(0.0))  # the preference pushes cancel
    torch.testing.assert_close(gold.grad, t(-0.25))  # -alpha / len_gold


def test_tpo_needs_the_gold():
    with pytest.raises(ValueError, match="gold log-probs"):
        loss("triple_preference", PairBatch(t(-1.0), t(-2.0), t(1.0), t(1.0)))


# ----------------------------------------------------------------------------- A-LoL


def alol_batch(chosen, rejected, ref_chosen, ref_rejected, score_w, score_l, baseline) -> PairBatch:
    return PairBatch(chosen, rejected, t(1.0), t(1.0), t(ref_chosen), t(ref_rejected), t(score_w), t(score_l),
                     t(baseline))  # fmt: skip


def test_alol_drops_completions_below_the_baseline():
    chosen, rejected = leaf(-1.0), leaf(-2.0)
    out = loss("offline_advantage_pg", alol_batch(chosen, rejected, -1.0, -2.0, 0.2, 0.0, 0.5))
    out.sum().backward()
    assert out.item() == 0 and chosen.grad.item() == 0 and rejected.grad.item() == 0


def test_alol_clips_the_importance_weight():
    chosen, rejected = leaf(-1.0), leaf(-2.0)
    # chosen: pi / pi_ref = 2 -> 1.2, A = 1; rejected: 0.5 -> 0.8, A = 0.5
    b = alol_batch(chosen, rejected, -1.0 - math.log(2), -2.0 + math.log(2), 1.5, 1.0, 0.5)
    out = loss("offline_advantage_pg", b)
    torch.testing.assert_close(out, t(1.0))  # (-1 * 1.2 * -1 + -0.5 * 0.8 * -2) / 2 = (1.2 + 0.8) / 2
    out.sum().backward()
    torch.testing.assert_close(chosen.grad, t(-0.6))  # -A * w / 2 = -1 * 1.2 / 2
    torch.testing.assert_close(rejected.grad, t(-0.2))  # -0.5 * 0.8 / 2


def test_alol_names_missing_inputs():
    b = PairBatch(t(-1.0), t(-2.0), t(1.0), t(1.0), t(-1.0), t(-2.0), t(1.0), t(0.0))
    with pytest.raises(ValueError, match="baseline"):
        loss("offline_advantage_pg", b)


def test_offline_advantage_pg_keeps_negative_advantages_when_asked():
    # A = (0.5, -0.5), w = 1, logps = (-1, -2): pair loss = mean(-0.5 * -1, +0.5 * -2) = mean(0.5, -1.0) = -0.25
    b = PairBatch(t(-1.0), t(-2.0), t(1.0), t(1.0), t(-1.0), t(-2.0), t(1.0), t(0.0), t(0.5))
    assert loss("offline_advantage_pg", b, keep_negative=True).tolist() == [-0.25]
    assert loss("offline_advantage_pg", b).tolist() == [0.25]  # filtered: only the positive half
