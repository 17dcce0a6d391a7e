"""A reward term gated by another (RewardSpec.gated_by, Posterior-GRPO): counted only where the gate passes, in the
real trainer; refused where it cannot apply; absent from the fingerprints of stages that do not use it."""

from __future__ import annotations

import pytest
import torch
from trl import GRPOTrainer

from harness.config.checks import check_stage
from harness.config.errors import ConfigError
from harness.config.plain import plain_stage
from harness.config.schema import Stage
from harness.config.stage import RewardSpec, StageConfig
from tests.conftest import build_trainer
from tests.test_grpo import rows, stage


def gated(*specs) -> list[RewardSpec]:
    return [RewardSpec(name=n, gated_by=g) for n, g in specs]


def test_the_gated_term_counts_only_where_the_gate_passes(world, tmp_path, monkeypatch):
    """Hand-made scores through the trainer's own _calculate_rewards: the term is kept where the gate is >= 0.5, 0
    where it is below or unscored (NaN); the gate and ungated terms are untouched."""
    root, _ = world
    st = stage(None, ())
    st.rewards = gated(("exact_match", None), ("format", 0), ("format", None))
    trainer = build_trainer(st, str(root / "model"), rows(root), 0, tmp_path / "ckpt")
    assert trainer.gates == ((1, 0),)
    scores = torch.tensor([[1.0, 0.7, 0.7], [0.0, 0.7, 0.7], [0.5, 0.3, 0.3], [float("nan"), 0.9, 0.9]])
    monkeypatch.setattr(GRPOTrainer, "_calculate_rewards", lambda self, *a: scores.clone())
    out = trainer._calculate_rewards(None, None, None, None)
    expected = torch.tensor([[1.0, 0.7, 0.7], [0.0, 0.0, 0.7], [0.5, 0.3, 0.3], [float("nan"), 0.0, 0.9]])
    torch.testing.assert_close(out, expected, equal_nan=True)
    torch.testing.assert_close(trainer._gathered_rewards, expected, equal_nan=True)


def test_a_real_step_pays_the_gated_term_only_for_right_answers(world, tmp_path):
    """The untrained model answers nothing right: the format term gated by exact match pays nothing, while the same
    term ungated pays for any number written (TRL logs both per reward function)."""
    root, _ = world
    st = stage(None, (), max_steps=2, learning_rate=1e-2)
    st.rewards = gated(("exact_match", None), ("format", 0))
    trainer = build_trainer(st, str(root / "model"), rows(root), 0, tmp_path / "a")
    trainer.train()
    logged = [e for e in trainer.state.log_history if "rewards/format/mean" in e]
    assert logged and all(e["rewards/exact_match/mean"] == 0 for e in logged)
    assert all(e["rewards/format/mean"] == 0 for e in logged)
    st.rewards = gated(("exact_match", None), ("format", None))
    free = build_trainer(st, str(root / "model"), rows(root), 0, tmp_path / "b")
    free.train()
    assert sum(e["rewards/format/mean"] for e in free.state.log_history if "rewards/format/mean" in e) > 0


@pytest.mark.parametrize(
    "kind, specs, fragment",
    [
        ("grpo", [("exact_match", None), ("format", 2)], r"one of \[0\]\), got 2"),
        ("grpo", [("exact_match", None), ("format", 1)], r"one of \[0\]\), got 1"),
        ("grpo", [("exact_match", 1), ("format", 0)], "is itself gated"),
        ("generate", [("exact_match", None), ("format", 0)], "only GRPO stages gate a reward, not generate"),
    ],
)
def test_a_bad_gate_is_refused_naming_its_key(tmp_path, kind, specs, fragment):
    st = StageConfig(kind=kind, data="train", rewards=gated(*specs))
    with pytest.raises(ConfigError, match=fragment) as e:
        check_stage(st, tmp_path / "paper.yaml", "variants.v.stages.0")
    assert "variants.v.stages.0.rewards." in str(e.value) and ".gated_by" in str(e.value)


def test_an_ungated_stage_keeps_its_fingerprint_data():
    """gated_by is a field added after results existed: while unset it is not in the hashed data."""
    plain = plain_stage(Stage(kind="grpo", data="train", args={}, rewards=gated(("exact_match", None), ("format", 0))))
    assert "gated_by" not in plain["rewards"][0] and plain["rewards"][1]["gated_by"] == 0
