"""Multi-turn episodes (harness/environments/episodes.py) and the multiturn_grpo stage (harness/stages/multiturn.py) on
the real toy model: the environment's tokens carry no loss, and each episode's reward reaches every token of every
one of its policy turns through the objective (group mean/std advantages, clipped surrogate) unchanged."""

from __future__ import annotations

import itertools
import json

import datasets
import pytest
import torch

from harness.config.stage import ObjectiveConfig
from harness.environments import Turn
from harness.world.splits import read_split


class Echo:
    """A test environment: a turn of 3 characters or more is a call, answered `7=`; the second call, or a shorter
    turn (the model wrote EOS early), ends the episode. Reward: the number of calls, minus 0.5 for a turn without a
    call (a per-turn reward). No stop strings: turns end at EOS or at the turn's token limit."""

    stop = ()

    def reset(self, row: dict) -> str | None:
        self.calls, self.turns = 0, 0
        return None

    def step(self, text: str) -> Turn:
        self.turns += 1
        if len(text) >= 3:
            self.calls += 1
            return Turn("7=", done=self.calls >= 2, tool_call=True)
        return Turn(None, done=True, reward=-0.5)

    def reward(self) -> float:
        return float(self.calls)

    def stats(self) -> dict[str, float]:
        return {"success": float(self.calls == 2), "tool_calls": float(self.calls)}


@pytest.fixture(scope="module")
def toy(world):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root, _ = world
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(root / "model"), AutoTokenizer.from_pretrained(root / "model"), root


def test_episodes_interleave_turns_and_observations_with_the_mask_telling_them_apart(toy):
    from harness.environments.episodes import run_episodes

    model, tok, root = toy
    rows = read_split(root / "data", "train")[:16]
    episodes = run_episodes(model, tok, [r["prompt"] for r in rows], rows, Echo, max_turns=3, max_turn_tokens=6,
                            max_tokens=40)  # fmt: skip
    calls = 0
    for e in episodes:
        assert len(e.ids) == len(e.mask) <= 40 and 1 <= len(e.turns) <= 3
        observed = tok.decode([t for t, m in zip(e.ids, e.mask, strict=True) if m == 0])
        # every call's answer is in the episode, but the one of the call that ended it (no turn follows it)
        assert observed == "7=" * int(e.stats["tool_calls"] - (e.stats["tool_calls"] == 2))
        runs = [
            tok.decode([t for t, _ in run], skip_special_tokens=True)
            for key, run in itertools.groupby(zip(e.ids, e.mask, strict=True), key=lambda x: x[1])
            if key == 1
        ]
        assert runs == e.turns  # the policy's tokens are its turns, one run each between observations
        assert all(len(t) >= 3 for t in e.turns[:-1])
        expected = e.stats["tool_calls"] - (0.5 if len(e.turns[-1]) < 3 else 0.0)
        assert e.reward == expected
        calls += e.stats["tool_calls"]
    assert calls > 0


def test_a_stop_string_inside_a_token_cuts_the_turn_just_after_it(toy):
    from harness.environments.episodes import cut_turn

    _, tok, _ = toy
    ids = tok.encode("12+34=46", add_special_tokens=False)
    cut, text, by_eos = cut_turn(ids + [tok.eos_token_id], tok, ("+",))
    assert text == "12+" and tok.decode(cut) == "12+" and not by_eos
    whole, text, by_eos = cut_turn(ids + [tok.eos_token_id, 5], tok, ("#",))
    assert text == "12+34=46" and whole[-1] == tok.eos_token_id and by_eos


def episode_trainer(root, rows, make_env, turn_args: dict, out, *, learning_rate: float, max_steps: int,
                    batch: int):  # fmt: skip
    """A real HarnessGRPOTrainer on the toy model whose rollouts are multiturn episodes in `make_env`."""
    from transformers import AutoTokenizer
    from trl import GRPOConfig

    from harness.rewards import REWARDS
    from harness.stages.multiturn import rollout
    from harness.stages.trainers.grpo import HarnessGRPOTrainer

    return HarnessGRPOTrainer(
        model=str(root / "model"),
        reward_funcs=[REWARDS.get("episode_reward").build()],
        args=GRPOConfig(
            output_dir=str(out),
            learning_rate=learning_rate,
            max_steps=max_steps,
            per_device_train_batch_size=batch,
            num_generations=4,
            max_completion_length=turn_args["max_completion_length"],
            logging_steps=1,
            report_to=[],
            use_cpu=True,
            save_strategy="no",
            seed=0,
        ),  # fmt: skip
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(root / "model"),
        objective=ObjectiveConfig(),
        rollout_func=rollout(rows, make_env, turn_args),
    )


def test_a_multiturn_grpo_step_masks_the_environment_and_spreads_the_episode_advantage(toy, tmp_path):
    _, _, root = toy
    rows = read_split(root / "data", "train")[:8]
    args = dict(max_turns=3, max_turn_tokens=6, max_completion_length=40, temperature=1.0)
    trainer = episode_trainer(root, rows, Echo, args, tmp_path, learning_rate=0.1, max_steps=1, batch=16)
    seen = {}
    generate = trainer._generate_and_score_completions

    def capture(inputs):
        seen["batch"] = generate(inputs)
        seen["rewards"] = trainer._gathered_rewards[:, 0].clone()
        return seen["batch"]

    trainer._generate_and_score_completions = capture
    policy_loss = trainer._policy_loss

    def spy(logps, old, adv, mask, **kw):
        per_token = policy_loss(logps, old, adv, mask, **kw)
        seen["loss"] = (adv.detach(), mask.detach(), per_token.detach())
        return per_token

    trainer._policy_loss = spy
    compute_loss = trainer._compute_loss
    trainer._compute_loss = lambda model, inputs: compute_loss(model, seen.setdefault("inputs", inputs))
    trainer.train()
    batch, inputs = seen["batch"], seen["inputs"]  # as generated; as the loss saw it (TRL shuffles in between)
    adv, mask, per_token = seen["loss"]
    # the loss mask is the completion mask times the environment mask: 0 on every observation token
    assert torch.equal(mask, inputs["completion_mask"] * inputs["tool_mask"])
    observed = (inputs["completion_mask"] == 1) & (inputs["tool_mask"] == 0)
    assert observed.any() and not mask[observed].any()
    # the advantages are GRPO's over the episode rewards (the Echo environment's), by hand, group by group of 4
    groups = seen["rewards"].view(-1, 4)
    by_hand = (groups - groups.mean(1, keepdim=True)) / (groups.std(1, keepdim=True) + 1e-4)
    assert torch.allclose(batch["advantages"], by_hand.reshape(-1), atol=1e-5)
    assert set(seen["rewards"].tolist()) <= {-0.5, 0.0, 0.5, 1.0, 2.0}
    logged = next(h for h in trainer.state.log_history if "rewards/episode_reward/mean" in h)
    assert "env/tool_calls" in logged and "env/success" in logged
    # one advantage per episode, the same at every token of every policy turn: the per-token surrogate at
    # ratio 1 is -A on each policy token, so it is constant along the episode's policy tokens
    assert adv.abs().sum() > 0
    for i in range(adv.size(0)):
        values = per_token[i][mask[i] == 1]
        assert torch.allclose(values, -adv.reshape(-1)[i].expand_as(values), atol=1e-6)


def test_the_episode_evaluation_scores_by_the_environment_and_logs_behaviour(world, tmp_path):
    """The calculator environment on the arithmetic world's test split (its answers are integers too)."""
    from harness.config.components import EvalConfig
    from harness.config.stage import PieceSpec
    from harness.evaluation.episodes import evaluate_episodes

    root, _ = world
    cfg = EvalConfig(tasks=["toy_calculator"], environment=PieceSpec(name="calculator"), max_turns=2, n_samples=4,
                     temperature=1.0, max_new_tokens=6, batch_size=32)  # fmt: skip
    result = evaluate_episodes(str(root / "model"), cfg, 0, tmp_path, str(root / "data"))
    metrics = result["metrics"]["toy_calculator"]
    assert metrics["samples_per_question"] == 4 and metrics["questions"] == 16
    assert metrics["pass@1"] == pytest.approx(metrics["episodes/success"])
    assert 1 <= metrics["episodes/turns"] <= 2 and 0 <= metrics["episodes/tool_use"] <= 1
    assert "episodes/invalid_calls" in metrics and "episodes/tool_calls" in metrics
    assert result["protocol"]["environment"] == {"name": "calculator", "args": {}}
    assert result["protocol"]["max_turns"] == 2
    lines = (tmp_path / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 16 and len(json.loads(lines[0])["episodes"]) == 4


@pytest.mark.parametrize(
    ("change", "key", "fragment"),
    [
        ({"tasks": ["a", "b"]}, "tasks", "one task name"),
        ({"environment": {"name": "calc"}}, "environment.name", "unknown environment 'calc'"),
        ({"environment": {"name": "calculator", "args": {"x": 1}}}, "environment.args.x", "unknown argument"),
        ({"engine": "vllm"}, "engine", "vLLM samples episodes in training stages only"),
    ],
)
def test_an_episode_suite_is_checked(tmp_path, change, key, fragment):
    from harness.config.checks import check_eval
    from harness.config.components import EvalConfig
    from harness.config.errors import ConfigError
    from harness.config.typed import build

    suite = {"tasks": ["toy_calculator"], "environment": {"name": "calculator"}, "n_samples": 1, "temperature": 0.0}
    with pytest.raises(ConfigError) as info:
        check_eval(build(EvalConfig, suite | change), tmp_path / "s.yaml")
    assert info.value.key == key and fragment in str(info.value)


def test_an_episode_suite_waits_for_no_hub_download():
    """Its task name is a label, not an lm-eval task: nothing to fetch (the planner asks suite_uses_hub)."""
    from harness.config.read import load_component
    from harness.hub import suite_uses_hub
    from harness.layout import CONFIGS

    for suite in ("toy-calculator", "toy-retrieval"):
        assert not suite_uses_hub(load_component("eval", suite, CONFIGS, "test"))


class Paced(Echo):
    """Echo, recording the training progress each new episode's environment is given."""

    seen: list[float] = []

    def at_progress(self, p: float) -> None:
        Paced.seen.append(p)


def test_a_training_stage_hands_each_episode_its_progress(toy, tmp_path):
    """Environments following training (`at_progress`) get the share of steps done when their rollout starts."""
    _, _, root = toy
    rows = read_split(root / "data", "train")[:8]
    args = dict(max_turns=2, max_turn_tokens=4, max_completion_length=24, temperature=1.0)
    trainer = episode_trainer(root, rows, Paced, args, tmp_path, learning_rate=0.01, max_steps=4, batch=8)
    Paced.seen.clear()
    trainer.train()
    assert sorted(set(Paced.seen)) == [0.0, 0.25, 0.5, 0.75]  # one rollout per step, 8 episodes each
    assert len(Paced.seen) == 4 * 8
