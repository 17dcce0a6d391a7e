"""The pairwise generative judge (harness/rewards/pairwise_judge.py): BRPO's win probability against each group's
bootstrapped reference, computed by hand from direct forward passes of a real (toy) judge model."""

from __future__ import annotations

import re

import pytest

from harness.rewards import REWARDS
from harness.rewards.preference_oracle import reference_index
from tests.test_judge import direct_probability

TEMPLATE = "{prompt}{a}?{b}"  # the toy judge checks the first answer; the verdict is read after the second


def pairwise(model_dir, **args):
    return REWARDS.get("pairwise_judge").build(**({"model": "toy-sum-judge", "template": TEMPLATE,
                                                   "labels": ["yes", "no"]} | args), location=str(model_dir))  # fmt: skip


def test_each_completion_gets_its_win_probability_against_its_groups_reference(world):
    """r_i = (P_A(i vs ref) + 1 - P_A(ref vs i)) / 2 with P_A read by one unbatched forward pass; the reference 0.5."""
    root, _ = world
    template = TEMPLATE
    fn = pairwise(root / "model", template=template, batch_size=3)
    completions, prompts, ids = ["46", "47", "45", "15", "16"], ["12+34="] * 3 + ["7+8="] * 2, [0, 0, 0, 1, 1]
    got = fn(completions, prompts=prompts, id=ids)
    refs = {0: reference_index(completions[:3], 0), 1: 3 + reference_index(completions[3:], 1)}
    for i, c in enumerate(completions):
        ref = refs[ids[i]]
        if i == ref:
            assert got[i] == 0.5
            continue
        p1 = direct_probability(root / "model", template.format(prompt=prompts[i], a=c, b=completions[ref]))
        p2 = direct_probability(root / "model", template.format(prompt=prompts[i], a=completions[ref], b=c))
        assert got[i] == pytest.approx((p1 + 1 - p2) / 2, abs=1e-5), i
    one_way = pairwise(root / "model", template=template, both_orders=False)(completions, prompts=prompts, id=ids)
    for i, c in enumerate(completions):
        if i not in refs.values():
            want = direct_probability(
                root / "model", template.format(prompt=prompts[i], a=c, b=completions[refs[ids[i]]])
            )
            assert one_way[i] == pytest.approx(want, abs=1e-5)


def test_a_pair_met_again_is_not_judged_again(world):
    root, _ = world
    fn = pairwise(root / "model")
    logged = {}
    first = fn(["46", "47"], prompts=["12+34="] * 2, id=[0, 0], log_metric=lambda k, v: logged.__setitem__(k, v))
    calls = fn.judge.calls
    assert calls == 2 and logged == {"judge/pairs": 1.0}  # one pair, both orders
    assert fn(["46", "47"], prompts=["12+34="] * 2, id=[0, 0]) == first and fn.judge.calls == calls


@pytest.mark.parametrize(
    "args, message",
    [
        ({"template": "{prompt}{a}"}, r"fields \{a\} and \{b\}"),
        ({"template": "{a}{b}{answer}"}, r"fields \{a\} and \{b\}"),
        ({"labels": ["A", "A"]}, "two distinct labels"),
        ({"model": ""}, "model: a model config name"),
    ],
)
def test_bad_arguments_are_refused_at_config_time(args, message):
    f = REWARDS.get("pairwise_judge")
    problem = f.args_problem({"model": "toy-sum-judge", "template": "{prompt}{a} vs {b}"} | args)
    assert problem is not None and re.search(message, problem[1]), problem


def test_it_is_a_group_aware_model_reading_reward_without_labels():
    f = REWARDS.get("pairwise_judge")
    assert f.group_aware and f.reads_model and not f.needs_labels and not f.per_sample


def test_the_pairwise_judge_trains_a_policy_in_a_real_grpo_loop(world, tmp_path):
    """Two GRPO steps with the frozen toy model judging pairs: win probabilities reach TRL (each group's reference
    at 0.5, the rest in (0, 1)), the policy moves and the judge stays frozen."""
    import torch

    from harness.config.stage import RewardSpec
    from tests.test_judge import judged_grpo

    root, _ = world
    spec = RewardSpec(
        name="pairwise_judge", args={"model": "toy-sum-judge", "template": TEMPLATE, "labels": ["yes", "no"]}
    )
    trainer, fn, before = judged_grpo(root, tmp_path, spec)
    logged = [e for e in trainer.state.log_history if "rewards/pairwise_judge/mean" in e]
    assert len(logged) == 2 and all(0.0 < e["rewards/pairwise_judge/mean"] < 1.0 for e in logged)
    assert 0 < fn.judge.calls <= 2 * 2 * 2 * 3  # 2 steps x 2 groups x 3 pairs x 2 orders at most
    assert any(not torch.equal(before[k], v) for k, v in trainer.model.named_parameters())
    assert all(not p.requires_grad for p in fn.judge._model.parameters()) and not fn.judge._model.training
