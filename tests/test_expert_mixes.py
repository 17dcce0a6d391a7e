"""Expert mixes (harness/algorithms/expert.py): schedules and per-sample switches by hand."""

from __future__ import annotations

import math

import pytest
import torch

from harness.algorithms import EXPERT_MIXES
from harness.algorithms.expert import linear_decay


def mix(name: str, *, step: int = 0, max_steps: int = 100, accuracy=(0.0, 0.5), expert_logps=None, **args):
    acc = torch.tensor(accuracy, dtype=torch.float32)
    logps = torch.zeros(len(accuracy), 3) if expert_logps is None else expert_logps
    return EXPERT_MIXES.get(name)(step=step, max_steps=max_steps, group_accuracy=acc, expert_logps=logps, **args)


def test_all_registered():
    assert {"scheduled_sft", "accuracy_switch"} <= set(EXPERT_MIXES.names())


@pytest.mark.parametrize(
    ("step", "expected"),
    [(0, 0.5), (25, 0.35), (50, 0.2), (100, -0.1), (130, -0.1)],  # 0.5 + (-0.1 - 0.5) * step / 100, then flat
)
def test_linear_decay(step, expected):
    assert linear_decay(step, 0.5, -0.1, 100) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("step", "decay_steps", "mu"),
    [
        (0, None, 0.5),  # start
        (50, None, 0.25),  # half of max_steps = 100
        (100, None, 0.0),  # end
        (10, 20, 0.25),  # half of decay_steps
        (60, 20, 0.0),  # after decay_steps: stays at mu_end
    ],
)
def test_scheduled_sft_mu(step, decay_steps, mu):
    rl, sft, _ = mix("scheduled_sft", step=step, decay_steps=decay_steps)
    torch.testing.assert_close(sft, torch.tensor([mu, mu]))
    torch.testing.assert_close(rl, torch.tensor([1 - mu, 1 - mu]))


def test_scheduled_sft_other_endpoints():
    _, sft, _ = mix("scheduled_sft", step=30, max_steps=60, mu_start=1.0, mu_end=0.2)
    torch.testing.assert_close(sft, torch.tensor([0.6, 0.6]))  # 1.0 + (0.2 - 1.0) * 30 / 60


def test_scheduled_sft_token_weights():
    logps = torch.log(torch.tensor([[0.5, 0.25, 1.0]]))  # the last is padding (log p = 0)
    _, _, tok = mix("scheduled_sft", accuracy=(0.0,), expert_logps=logps)
    torch.testing.assert_close(tok, torch.tensor([[0.25, 0.1875, 0.0]]))  # 0.5 * 0.5, 0.25 * 0.75, 1 * 0
    _, _, flat = mix("scheduled_sft", accuracy=(0.0,), expert_logps=logps, token_weighting="none")
    torch.testing.assert_close(flat, torch.ones(1, 3))


def test_scheduled_sft_rejects_unknown_token_weighting():
    with pytest.raises(ValueError, match="token_weighting"):
        mix("scheduled_sft", token_weighting="p")


def test_accuracy_switch_at_below_and_above_threshold():
    rl, sft, tok = mix("accuracy_switch", accuracy=(0.0, 0.25, 0.5, 1.0), threshold=0.25)
    torch.testing.assert_close(sft, torch.tensor([1.0, 1.0, 0.0, 0.0]))  # below, at, above, above
    torch.testing.assert_close(rl, torch.tensor([0.0, 0.0, 1.0, 1.0]))
    torch.testing.assert_close(tok, torch.ones(4, 3))


def test_accuracy_switch_default_is_all_rollouts_failed():
    _, sft, _ = mix("accuracy_switch", accuracy=(0.0, 1 / 8, 1.0))
    torch.testing.assert_close(sft, torch.tensor([1.0, 0.0, 0.0]))


def test_token_weights_do_not_carry_gradient():
    logps = torch.tensor([[math.log(0.5)]], requires_grad=True)
    _, _, tok = mix("scheduled_sft", accuracy=(0.0,), expert_logps=logps)
    assert not tok.requires_grad
