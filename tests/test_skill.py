"""Toy bases defined by the skill they reach (harness/world/toy_model.py): pre-training stops once `settle` checks in
a row lie in the band, records them, and refuses a base that never settles in its band, jumps past it, or whose test
split disagrees with it; the shipped bases state one."""

from __future__ import annotations

import json

import pytest

from harness.config.errors import ConfigError
from harness.world.toy_model import SkillError, ToyModelSpec, pretrain

TINY = dict(hidden_size=32, num_layers=1, intermediate_size=64, batch_size=16, threads=1)


def test_pretraining_stops_once_settle_checks_in_a_row_lie_inside_the_band(world, tmp_path):
    root, _ = world
    summary = pretrain(ToyModelSpec(**TINY, pretrain_steps=40, skill=[0.0, 1.0], check_every=10), root / "data",
                       root / "tok", tmp_path / "m", log_every=10)  # fmt: skip
    assert summary["steps"] == 20 and [c["step"] for c in summary["skill_checks"]] == [10, 20]
    saved = json.loads((tmp_path / "m" / "pretrain.json").read_text())
    assert saved["skill"] == [0.0, 1.0] and saved["settle"] == 2 and saved["threads"] == 1
    assert 0 <= saved["greedy_test_accuracy"] <= 1
    assert (tmp_path / "m" / "config.json").is_file()


def test_a_base_that_never_reaches_its_band_is_refused(world, tmp_path):
    root, _ = world
    with pytest.raises(SkillError, match=r"did not settle in its skill band 0.99-1 \(2 checks in a row\) in 20 steps "
                                         r"\(.* at 10, .* at 20\)"):  # fmt: skip
        pretrain(ToyModelSpec(**TINY, pretrain_steps=20, skill=[0.99, 1.0], check_every=10), root / "data",
                 root / "tok", tmp_path / "m", log_every=10)  # fmt: skip
    assert not (tmp_path / "m" / "config.json").exists()  # nothing saved


def test_a_base_that_jumps_past_its_band_is_refused(world, tmp_path, monkeypatch):
    # the accuracies a fast learner would show at its checks (the control logic, not the model, is under test)
    seen = iter([0.05, 0.40, 0.95])
    monkeypatch.setattr("harness.world.toy_model.greedy_accuracy", lambda *a, **k: next(seen))
    root, _ = world
    with pytest.raises(SkillError, match=r"jumped past its skill band 0.5-0.6 between two checks .*check more often"):
        pretrain(ToyModelSpec(**TINY, pretrain_steps=40, skill=[0.5, 0.6], check_every=10), root / "data",
                 root / "tok", tmp_path / "m", log_every=10)  # fmt: skip


def test_one_lucky_check_on_a_noisy_plateau_does_not_stop_pretraining(world, tmp_path, monkeypatch):
    # validation accuracies at steps 10..60 (dipping out of the band after its first visit), then the test split's
    seen = iter([0.03, 0.08, 0.05, 0.09, 0.04, 0.08, 0.10, 0.09])
    monkeypatch.setattr("harness.world.toy_model.greedy_accuracy", lambda *a, **k: next(seen))
    root, _ = world
    summary = pretrain(ToyModelSpec(**TINY, pretrain_steps=100, skill=[0.07, 0.15], check_every=10), root / "data",
                       root / "tok", tmp_path / "m", log_every=10)  # fmt: skip
    assert summary["steps"] == 70 and summary["greedy_test_accuracy"] == 0.09


def test_a_base_whose_test_split_disagrees_with_its_band_is_refused(world, tmp_path, monkeypatch):
    # two validation checks in the band, then a test-split accuracy far below it (16 rows: a margin of 0.25)
    seen = iter([0.55, 0.56, 0.10])
    monkeypatch.setattr("harness.world.toy_model.greedy_accuracy", lambda *a, **k: next(seen))
    root, _ = world
    with pytest.raises(SkillError, match=r"test split, 0.100, lies outside its skill band 0.5-0.6 by more than"):
        pretrain(ToyModelSpec(**TINY, pretrain_steps=40, skill=[0.5, 0.6], check_every=10), root / "data",
                 root / "tok", tmp_path / "m", log_every=10)  # fmt: skip
    assert not (tmp_path / "m" / "config.json").exists()


def test_shipped_toy_bases_state_their_skill_and_bad_bands_are_refused(tmp_path):
    from harness.config.checks import check_model
    from harness.config.components import ModelConfig
    from harness.config.read import load_component
    from harness.layout import CONFIGS

    for name in ("toy-arith", "toy-arith-weak", "toy-chain", "toy-chain-mixed"):
        skill = load_component("models", name, CONFIGS / "models", "").toy.skill
        assert skill is not None and 0 <= skill[0] < skill[1] <= 1, name
    with pytest.raises(ConfigError, match=r"m.yaml: toy.settle: must be at least 1, got 0"):
        check_model(ModelConfig(source="toy", dataset="toy-arith", toy=ToyModelSpec(settle=0)), tmp_path / "m.yaml")
    for band in ([0.9, 0.8], [0.5], [0.5, 1.5]):
        with pytest.raises(ConfigError, match=r"m.yaml: toy.skill: a band \[low, high\]"):
            check_model(
                ModelConfig(source="toy", dataset="toy-arith", toy=ToyModelSpec(skill=band)), tmp_path / "m.yaml"
            )
