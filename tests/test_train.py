"""Training stages resume from their last checkpoint after a crash, and drop stale checkpoints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from harness.config.schema import Stage
from harness.config.stage import RewardSpec
from tests.conftest import Crash, crash_after, run_stage


def grpo_stage(max_steps: int) -> Stage:
    args = dict(learning_rate=1e-4, max_steps=max_steps, per_device_train_batch_size=8, num_generations=4,
                max_completion_length=4, save_steps=2, logging_steps=1)  # fmt: skip
    return Stage(kind="grpo", data="train", rewards=[RewardSpec(name="exact_match")], args=args)


def test_killed_stage_resumes_from_last_checkpoint(world, tmp_path, monkeypatch):
    root, dataset = world
    crash_after(monkeypatch, 3)
    with pytest.raises(Crash):
        run_stage(grpo_stage(6), str(root / "model"), dataset, root / "data", 0, tmp_path, "fp")
    assert (tmp_path / "checkpoints/checkpoint-2").is_dir() and not (tmp_path / "train.json").exists()

    monkeypatch.undo()
    summary = run_stage(grpo_stage(6), str(root / "model"), dataset, root / "data", 0, tmp_path, "fp")
    assert summary["resumed_from"].endswith("checkpoint-2")
    assert summary["global_step"] == 6
    steps = [e["step"] for e in json.loads((tmp_path / "train.json").read_text())["log_history"] if "reward" in e]
    assert steps == [1, 2, 3, 4, 5, 6]  # history restored from the checkpoint, steps 3.. redone once

    # The resumed run ends with the same weights as an uninterrupted one (RNG state is checkpointed too).
    straight = tmp_path.parent / (tmp_path.name + "-straight")
    run_stage(grpo_stage(6), str(root / "model"), dataset, root / "data", 0, straight, "fp")
    resumed, uninterrupted = (load_file(str(d / "model" / "model.safetensors")) for d in (tmp_path, straight))
    assert resumed.keys() == uninterrupted.keys()
    for name in resumed:
        torch.testing.assert_close(resumed[name], uninterrupted[name], rtol=0, atol=1e-6, msg=name)


def killed_resumed_and_straight(stage, world, tmp_path, monkeypatch) -> list[Path]:
    """`stage` (8 steps, a checkpoint every 5) killed after step 6 and resumed, into tmp_path/r, and run
    uninterrupted into tmp_path/s; the resumed run's weights must equal the uninterrupted run's."""
    root, dataset = world
    crash_after(monkeypatch, 6)
    with pytest.raises(Crash):
        run_stage(stage, str(root / "model"), dataset, root / "data", 0, tmp_path / "r", "fp")
    monkeypatch.undo()
    summary = run_stage(stage, str(root / "model"), dataset, root / "data", 0, tmp_path / "r", "fp")
    assert summary["resumed_from"].endswith("checkpoint-5") and summary["global_step"] == 8
    run_stage(stage, str(root / "model"), dataset, root / "data", 0, tmp_path / "s", "fp")
    resumed, uninterrupted = (load_file(str(tmp_path / d / "model" / "model.safetensors")) for d in ("r", "s"))
    for name in resumed:
        torch.testing.assert_close(resumed[name], uninterrupted[name], rtol=0, atol=1e-6, msg=name)
    return [tmp_path / "r", tmp_path / "s"]


def test_a_stage_resumed_in_a_later_epoch_ends_as_an_uninterrupted_one(world, tmp_path, monkeypatch):
    """16 prompts a step over 64 rows: 4 steps an epoch. Killed after step 6 and resumed from checkpoint-5 (in the
    second epoch), the run draws the second epoch's order, not the first's again, and ends with the same weights."""
    stage = grpo_stage(8)
    stage.args.update(per_device_train_batch_size=64, save_steps=5, learning_rate=1e-2)
    stage.rewards = [RewardSpec(name="format")]  # rewards that vary within a group on this barely trained model
    runs = killed_resumed_and_straight(stage, world, tmp_path, monkeypatch)
    history = [[e["reward"] for e in json.loads((d / "train.json").read_text())["log_history"] if "reward" in e]
               for d in runs]  # fmt: skip
    assert len(set(history[1])) > 1  # rewards that move, so a different order would show
    assert history[0] == history[1]  # the same rewards at every step: the same prompts, the same samples


def test_an_sft_stage_resumed_in_a_later_epoch_ends_as_an_uninterrupted_one(world, tmp_path, monkeypatch):
    """As above for SFT (transformers' shuffled sampler, which accelerate seeds per epoch): 64 rows, 16 a step."""
    stage = Stage(kind="sft", data="train", rewards=[], args=dict(learning_rate=1e-2, max_steps=8, save_steps=5,
                  per_device_train_batch_size=16, logging_steps=1))  # fmt: skip
    killed_resumed_and_straight(stage, world, tmp_path, monkeypatch)


def test_a_checkpoint_interrupted_while_saving_is_never_resumed_from(world, tmp_path, monkeypatch):
    """Killed after the weights of checkpoint-4 were written but before the rest: the resumed run discards it
    and redoes steps 3-4 from checkpoint-2 (transformers writes checkpoints in place, so without the harness's
    completion mark checkpoint-4 would be taken as the newest)."""
    from transformers import Trainer

    root, dataset = world
    original = Trainer._save_rng_state

    def crash_at_4(self, output_dir):
        if self.state.global_step == 4:
            raise Crash("simulated kill while saving checkpoint-4")
        return original(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_rng_state", crash_at_4)
    with pytest.raises(Crash):
        run_stage(grpo_stage(6), str(root / "model"), dataset, root / "data", 0, tmp_path, "fp")
    half = tmp_path / "checkpoints/checkpoint-4"
    assert (half / "model.safetensors").is_file() and not (half / "trainer_state.json").exists()

    monkeypatch.undo()
    summary = run_stage(grpo_stage(6), str(root / "model"), dataset, root / "data", 0, tmp_path, "fp")
    assert summary["resumed_from"].endswith("checkpoint-2") and summary["global_step"] == 6
    steps = [e["step"] for e in summary["log_history"] if "reward" in e]
    assert steps == [1, 2, 3, 4, 5, 6]
    straight = tmp_path.parent / (tmp_path.name + "-straight")
    run_stage(grpo_stage(6), str(root / "model"), dataset, root / "data", 0, straight, "fp")
    resumed, uninterrupted = (load_file(str(d / "model" / "model.safetensors")) for d in (tmp_path, straight))
    for name in resumed:
        torch.testing.assert_close(resumed[name], uninterrupted[name], rtol=0, atol=1e-6, msg=name)


def test_a_base_rebuilt_under_the_same_config_discards_old_checkpoints(world, tmp_path):
    # The fingerprint names the base by its path. A base built again there (same config, new weights: a toy base
    # rebuilt to its skill) must not be continued from the old one's checkpoints, which once left RL runs untrained.
    root, dataset = world
    base, out = tmp_path / "base", tmp_path / "stage"
    shutil.copytree(root / "model", base)
    run_stage(grpo_stage(2), str(base), dataset, root / "data", 0, out, "fp")
    again = run_stage(grpo_stage(2), str(base), dataset, root / "data", 0, out, "fp")
    assert again["resumed_from"].endswith("checkpoint-2")  # the same base: resumed, nothing left to train
    weights = base / "model.safetensors"
    weights.write_bytes(weights.read_bytes())  # the base written again
    rebuilt = run_stage(grpo_stage(2), str(base), dataset, root / "data", 0, out, "fp")
    assert rebuilt["resumed_from"] is None and rebuilt["global_step"] == 2


def test_changed_config_discards_old_checkpoints(world, tmp_path):
    root, dataset = world
    run_stage(grpo_stage(2), str(root / "model"), dataset, root / "data", 0, tmp_path, "fp-old")
    summary = run_stage(grpo_stage(2), str(root / "model"), dataset, root / "data", 0, tmp_path, "fp-new")
    assert summary["resumed_from"] is None
