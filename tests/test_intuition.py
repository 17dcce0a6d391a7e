"""Intuitive Fine-Tuning's temporal residual: the blend by hand, and lambda 0 equal to TRL's own SFT loss."""

from __future__ import annotations

import datasets
import pytest
import torch

from harness.algorithms.intuition import temporal_residual
from harness.config.schema import Stage
from harness.world.splits import read_split
from tests.conftest import build_trainer


def test_answer_positions_blend_the_gold_embedding_with_the_previous_prediction():
    token = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [5.0, 5.0]]])  # (1, 4, 2)
    predicted = torch.tensor([[[9.0, 9.0], [4.0, 0.0], [0.0, 8.0], [7.0, 7.0]]])
    answer = torch.tensor([[False, False, True, True]])
    out = temporal_residual(token, predicted, answer, 0.25)
    # prompt positions unchanged; position 2: 0.75 * (2, 2) + 0.25 * (4, 0) = (2.5, 1.5);
    # position 3: 0.75 * (5, 5) + 0.25 * (0, 8) = (3.75, 5.75)
    assert out.tolist() == [[[1.0, 0.0], [0.0, 1.0], [2.5, 1.5], [3.75, 5.75]]]
    assert temporal_residual(token, predicted, answer, 0.0).tolist() == token.tolist()


def sft(world, tmp_path, lam):
    root, _ = world
    st = Stage(kind="sft", data="train", rewards=[], args=dict(learning_rate=0.05, max_steps=2, per_device_train_batch_size=4,
               save_steps=100, logging_steps=1, temporal_residual=lam))  # fmt: skip
    rows = datasets.Dataset.from_list(read_split(root / "data", "train"))
    return build_trainer(st, str(root / "model"), rows, 0, tmp_path)


def test_lambda_zero_is_trls_sft_loss(world, tmp_path):
    ours, trls = sft(world, tmp_path / "a", 0.0), sft(world, tmp_path / "b", None)
    batch = trls.data_collator([trls.train_dataset[i] for i in range(4)])
    assert ours.compute_loss(ours.model, dict(batch)).item() == pytest.approx(
        trls.compute_loss(trls.model, dict(batch)).item(), rel=1e-5
    )


def test_the_blend_changes_the_loss_and_trains(world, tmp_path):
    plain, ift = sft(world, tmp_path / "a", None), sft(world, tmp_path / "b", 0.5)
    batch = plain.data_collator([plain.train_dataset[i] for i in range(4)])
    assert ift.compute_loss(ift.model, dict(batch)).item() != pytest.approx(
        plain.compute_loss(plain.model, dict(batch)).item(), rel=1e-4
    )
    before = {k: v.detach().clone() for k, v in ift.model.named_parameters()}
    ift.train()
    assert any(not torch.equal(before[k], v) for k, v in ift.model.named_parameters())
    assert [h["temporal_residual"] for h in ift.state.log_history if "temporal_residual" in h][0] == 0.5
