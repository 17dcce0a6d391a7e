"""The GRPO trainer subclass composes the registered pieces inside real TRL training steps."""

from __future__ import annotations

import json

import datasets
import pytest
import torch

from harness.config.schema import Stage
from harness.config.stage import ObjectiveConfig, PieceSpec, RewardSpec
from harness.world.splits import read_split
from tests.conftest import Crash, build_trainer, crash_after, run_stage


def rows(root, split="train"):
    return datasets.Dataset.from_list(read_split(root / "data", split))


def stage(objective=None, rewards=("exact_match",), **args) -> Stage:
    base = dict(learning_rate=0.5, max_steps=1, per_device_train_batch_size=8, num_generations=4,
                max_completion_length=4, save_steps=100, logging_steps=1, optim="sgd")  # fmt: skip
    return Stage(kind="grpo", data="train", rewards=[RewardSpec(name=r) for r in rewards],
                 args=base | args, objective=objective or ObjectiveConfig())  # fmt: skip


def train_once(root, tmp_path, st: Stage, seed: int = 0):
    trainer = build_trainer(st, str(root / "model"), rows(root), seed, tmp_path / "ckpt")
    before = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    trainer.train()
    after = dict(trainer.model.named_parameters())
    return trainer, before, after


@pytest.mark.parametrize("aggregation", ["token_mean", "sequence_mean"])
def test_batch_1_x_accumulation_8_equals_batch_8_x_accumulation_1(world, tmp_path, aggregation):
    """One SGD step: the same 8 completions as one batch or as 8 accumulated micro-batches."""
    root, _ = world
    objective = ObjectiveConfig(aggregation=aggregation, advantage=PieceSpec(name="reward"))
    # the untrained model answers nothing right; whether it writes a number at all varies
    one = stage(objective, ("format",), per_device_train_batch_size=8, gradient_accumulation_steps=1)
    eight = stage(objective, ("format",), per_device_train_batch_size=1, gradient_accumulation_steps=8)
    _, before, after_one = train_once(root, tmp_path / "a", one)
    _, _, after_eight = train_once(root, tmp_path / "b", eight)
    moved = sum((after_one[k] - before[k]).abs().sum().item() for k in before)
    assert moved > 0  # the comparison is not between two untouched models
    for k in before:
        torch.testing.assert_close(after_one[k], after_eight[k], rtol=1e-4, atol=1e-6, msg=k)


OBJECTIVES = {
    "ngrpo": ObjectiveConfig(advantage=PieceSpec(name="virtual_max"),
                             loss=PieceSpec(name="clipped_surrogate", args={"epsilon_low": 0.2, "epsilon_high": 0.28})),
    "nsr": ObjectiveConfig(advantage=PieceSpec(name="sign_split", args={"positive": 0.0}),
                           loss=PieceSpec(name="reinforce")),
    "rover": ObjectiveConfig(advantage=PieceSpec(name="group_mean"), loss=PieceSpec(name="value_regression")),
    "per_token": ObjectiveConfig(advantage=PieceSpec(name="token_discounted", args={"gamma": 0.5})),
    "canon": ObjectiveConfig(advantage=PieceSpec(name="canon", args={"inter_weight": 1.0})),
    "spine": ObjectiveConfig(top_entropy_quantile=0.5,
                             aux=[PieceSpec(name="entropy_band", args={"low": 0.5, "high": 1.5, "coef": 0.1})]),
    "kl_entropy": ObjectiveConfig(aggregation="sequence_sum",
                                  aux=[PieceSpec(name="kl_to_reference", args={"coef": 0.05}),
                                       PieceSpec(name="entropy_bonus", args={"coef": 0.01})]),
}  # fmt: skip


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_objective_trains_in_the_real_trainer(world, tmp_path, name):
    root, _ = world
    objective = OBJECTIVES[name]
    st = stage(objective, ("exact_match", "format"), max_steps=2, learning_rate=1e-2)
    trainer, before, after = train_once(root, tmp_path, st)
    assert sum((after[k] - before[k]).abs().sum().item() for k in before) > 0
    logged = {k for entry in trainer.state.log_history for k in entry}
    assert {"policy_loss", "entropy", "advantage/abs_mean"} <= logged
    assert {f"aux/{a.name}" for a in objective.aux} <= logged
    if any(a.name == "kl_to_reference" for a in objective.aux):
        assert trainer.ref_model is not None and "kl" in logged


def test_virtual_max_learns_from_all_wrong_groups_where_grpo_cannot(world, tmp_path):
    """The untrained toy model gets everything wrong: GRPO's advantages are all 0, NGRPO's are not."""
    root, _ = world
    grpo, before, after = train_once(root, tmp_path / "g", stage(max_steps=1))
    rewards = [e["reward"] for e in grpo.state.log_history if "reward" in e]
    assert rewards == [0.0]  # nothing right, so the test below is about all-wrong groups
    assert all(torch.equal(before[k], after[k]) for k in before)
    _, before, after = train_once(root, tmp_path / "n", stage(OBJECTIVES["ngrpo"], max_steps=1))
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_stateful_reward_state_is_checkpointed_and_resumed(world, tmp_path, monkeypatch):
    """A run killed after step 3 resumes from checkpoint-2 with the reward's per-sample history, and
    ends with the same history as an uninterrupted run."""
    root, dataset = world
    st = stage(rewards=("refined_label",), max_steps=4, save_steps=2, learning_rate=1e-2)
    st.args.pop("optim")
    crash_after(monkeypatch, 3)
    with pytest.raises(Crash):
        run_stage(st, str(root / "model"), dataset, root / "data", 0, tmp_path / "r", "fp")
    saved = json.loads((tmp_path / "r/checkpoints/checkpoint-2/reward_state.json").read_text())
    assert len(saved["refined_label"]["ids"]) == 2 * 2  # two steps of two prompts each, visited once
    monkeypatch.undo()
    summary = run_stage(st, str(root / "model"), dataset, root / "data", 0, tmp_path / "r", "fp")
    assert summary["resumed_from"].endswith("checkpoint-2")
    run_stage(st, str(root / "model"), dataset, root / "data", 0, tmp_path / "s", "fp")
    resumed, straight = (json.loads((tmp_path / d / "checkpoints/checkpoint-4/reward_state.json").read_text())
                         for d in ("r", "s"))  # fmt: skip
    assert resumed == straight and len(straight["refined_label"]["ids"]) >= 4


def test_rover_vocabulary_means_equal_the_full_log_softmax_without_keeping_it(world, tmp_path):
    """ROVER's next-state term reads the mean log-prob over the vocabulary at every completion position: computed
    in blocks of positions from the final hidden states, it equals the mean of the full (B, T, V) log-softmax."""
    root, _ = world
    objective = ObjectiveConfig(advantage=PieceSpec(name="group_mean"), loss=PieceSpec(name="value_regression"))
    trainer = build_trainer(stage(objective), str(root / "model"), rows(root), 0, tmp_path / "ckpt")
    trainer.VOCAB_MEAN_ROWS, trainer.VOCAB_MEAN_POSITIONS = 3, 2  # several blocks of rows and of positions
    torch.manual_seed(0)
    vocab = trainer.model.config.vocab_size
    inputs = {
        "prompt_ids": torch.randint(0, vocab, (5, 4)),
        "prompt_mask": torch.ones(5, 4, dtype=torch.long),
        "completion_ids": torch.randint(0, vocab, (5, 5)),
        "completion_mask": torch.ones(5, 5, dtype=torch.long),
    }
    means = trainer._vocab_mean_logps(trainer.model, inputs)
    with torch.no_grad():
        ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
        logits = trainer.model(input_ids=ids).logits[:, -6:-1].float() / trainer.temperature
        expected = torch.log_softmax(logits, dim=-1).mean(-1)
    assert means.shape == (5, 5)
    torch.testing.assert_close(means, expected, rtol=1e-5, atol=1e-5)


def test_masked_spans_carry_no_loss_in_a_real_grpo_step(world, tmp_path):
    """SSRL's mask: a span from an opening tag through its closing tag (here from a digit through a later digit, which
    the barely trained model writes often) carries no loss; the tokens outside it carry the sequence's advantage."""
    from harness.algorithms.spans import span_mask

    root, _ = world
    pairs = [[str(a), str(b)] for a in range(10) for b in range(10)]
    objective = ObjectiveConfig(advantage=PieceSpec(name="reward"), loss=PieceSpec(name="reinforce"),
                                masked_spans=pairs)  # fmt: skip
    st = stage(objective, ("format",), max_completion_length=8, temperature=1.0)
    trainer = build_trainer(st, str(root / "model"), rows(root), 0, tmp_path / "ckpt")
    seen = {}
    policy_loss, compute_loss = trainer._policy_loss, trainer._compute_loss  # spied on: the mask the loss sums by

    def spy(logps, old, adv, mask, **kw):
        per_token = policy_loss(logps, old, adv, mask, **kw)
        seen["loss"] = (mask.detach(), per_token.detach())
        return per_token

    trainer._policy_loss = spy
    trainer._compute_loss = lambda model, inputs: compute_loss(model, seen.setdefault("inputs", inputs))
    trainer.train()
    inputs, (mask, per_token) = seen["inputs"], seen["loss"]
    tok = trainer.processing_class
    for ids, valid, keep in zip(inputs["completion_ids"], inputs["completion_mask"], inputs["tool_mask"], strict=True):
        n = int(valid.sum())
        pieces = [tok.decode([t]) for t in ids[:n].tolist()]
        assert keep[:n].tolist() == span_mask(pieces, pairs)  # every masked token lies between two digits
    assert torch.equal(mask, inputs["completion_mask"] * inputs["tool_mask"])
    masked = (inputs["completion_mask"] == 1) & (inputs["tool_mask"] == 0)
    assert masked.any() and (mask == 1).any()  # both kinds of token are in the batch
    assert not mask[masked].any() and per_token[masked].abs().sum() > 0  # a loss the mask leaves out of the sum
    logged = next(h for h in trainer.state.log_history if "masked_spans/share" in h)
    assert 0 < logged["masked_spans/share"] < 1
