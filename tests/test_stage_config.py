"""Multi-stage variants: rounds, what a stage takes from earlier stages, and the refusals of bad combinations."""

from __future__ import annotations

import pytest
import yaml

from harness.config.errors import ConfigError
from harness.config.load import load_paper
from harness.layout import stage_dir
from harness.plan import Plan
from tests.conftest import write_bundle

GEN = {"kind": "generate", "rewards": [{"name": "exact_match"}]}
DPO = {"kind": "dpo", "data": "generated"}
RM = {"kind": "reward_model", "data": "generated"}
GRPO = {"kind": "grpo", "rewards": [{"name": "exact_match"}]}


def bundle(tmp_path, **variants) -> str:
    paper = {"paper": {"title": "t"}, "variants": {"base": {"stages": []}, **variants}, "scales": {"toy": {}}}
    write_bundle(tmp_path, "p", yaml.safe_dump(paper))
    return "p"


def refusal(tmp_path, **variants) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_paper(bundle(tmp_path, **variants), "toy", papers_dir=tmp_path)
    assert "p/paper.yaml" in str(info.value)
    return info.value


def test_rounds_repeat_their_stages_after_the_variants_own(tmp_path):
    slug = bundle(tmp_path, dno={"stages": [{"kind": "sft"}], "rounds": {"count": 3, "stages": [GEN, DPO]}})
    stages = load_paper(slug, "toy", papers_dir=tmp_path).variants["dno"].stages
    assert [s.kind for s in stages] == ["sft"] + ["generate", "dpo"] * 3


def test_own_stages_beside_inherited_ones_are_refused(tmp_path):
    """A variant whose chain has stages may not list its own: they would replace the chain's, not follow them (the
    mistake two shipped bundles made). Extending a variant without stages, or listing none, is fine."""
    e = refusal(tmp_path, sft={"stages": [{"kind": "sft"}]}, rl={"extends": "sft", "stages": [GRPO]})
    assert "variants.rl.stages: rl extends sft and lists stages of its own, which replace sft's" in str(e)
    e = refusal(
        tmp_path, sft={"stages": [{"kind": "sft"}]}, mid={"extends": "sft"}, rl={"extends": "mid", "stages": [GRPO]}
    )
    assert "rl extends mid and lists stages of its own, which replace mid's" in str(e)
    slug = bundle(tmp_path, rl={"extends": "base", "stages": [GRPO]}, same={"extends": "rl"})
    rp = load_paper(slug, "toy", papers_dir=tmp_path)
    assert [s.kind for s in rp.variants["rl"].stages] == [s.kind for s in rp.variants["same"].stages] == ["grpo"]


def test_a_variant_extending_another_inherits_its_rounds(tmp_path):
    slug = bundle(tmp_path, dno={"rounds": {"count": 2, "stages": [GEN, DPO]}},
                  longer={"extends": "dno", "rounds": {"count": 4, "stages": [GEN, DPO]}}, same={"extends": "dno"})  # fmt: skip
    rp = load_paper(slug, "toy", papers_dir=tmp_path)
    assert len(rp.variants["same"].stages) == 4 and len(rp.variants["longer"].stages) == 8


def test_each_round_starts_from_the_policy_the_last_one_trained(tmp_path):
    slug = bundle(tmp_path, dno={"rounds": {"count": 2, "stages": [GEN, DPO]}})
    plan = Plan([slug], "toy", tmp_path)
    run = plan.run(slug, "dno", 0)
    base = plan.base_model(slug, "dno")
    assert [plan.model_after(run, i) for i in range(5)] == [
        base, base, f"{stage_dir(run, 1)}/model", f"{stage_dir(run, 1)}/model", f"{stage_dir(run, 3)}/model"]  # fmt: skip
    assert plan.upstream(run, 3) == {"pairs": stage_dir(run, 2)}  # round 2 trains on round 2's samples
    assert f"{stage_dir(run, 2)}/train.json" in plan.stage_inputs(run, 3)
    assert f"{stage_dir(run, 1)}/train.json" in plan.stage_inputs(run, 2)  # sampled from round 1's policy
    assert plan.final_model(run) == f"{stage_dir(run, 3)}/model"
    assert plan.snapshot_steps(run, 2) == []  # a generate stage has no policy to snapshot


def test_a_learned_reward_reads_the_latest_reward_model(tmp_path):
    grpo = {"kind": "grpo", "rewards": [{"name": "learned_reward"}], "data": "pool"}
    slug = bundle(tmp_path, e2h={"stages": [GEN, RM, grpo]})
    plan = Plan([slug], "toy", tmp_path)
    run = plan.run(slug, "e2h", 0)
    assert plan.upstream(run, 2) == {"reward_model": f"{stage_dir(run, 1)}/model"}
    assert f"{stage_dir(run, 1)}/train.json" in plan.stage_inputs(run, 2)
    assert plan.model_after(run, 2) == plan.base_model(slug, "e2h")  # the reward model is not the policy
    job = plan.stage_job(run, 2)  # what `harness train` hands the grpo stage
    assert job.upstream == {"reward_model": f"{stage_dir(run, 1)}/model"} and job.model == plan.base_model(slug, "e2h")
    assert str(job.dir) == stage_dir(run, 2) and job.fingerprint == plan.stage_fingerprint(run, 2)
    assert str(job.data_dir) == "results/world/data/toy-arith" and job.stage.data == "pool"


def test_a_stage_dataset_replaces_the_scales_for_that_stage_only(tmp_path):
    slug = bundle(tmp_path, e2h={"stages": [GEN | {"dataset": "toy-chain"}, GRPO]})
    plan = Plan([slug], "toy", tmp_path)
    run = plan.run(slug, "e2h", 0)
    assert "results/world/data/toy-chain/train.jsonl" in plan.stage_inputs(run, 0)
    assert "results/world/data/toy-arith/train.jsonl" in plan.stage_inputs(run, 1)
    assert plan.papers[slug].stage_dataset(plan.papers[slug].variants["e2h"].stages[0])[0] == "toy-chain"


@pytest.mark.parametrize(
    ("variant", "key", "words"),
    [
        ({"stages": [DPO]}, "variants.v.stages.0.data", "earlier generate stage"),
        ({"stages": [{"kind": "grpo", "rewards": [{"name": "learned_reward"}]}]}, "variants.v.stages.0.rewards.0.name",
         "earlier reward_model stage"),
        ({"stages": [GEN, {"kind": "dpo", "data": "train"}]}, "variants.v.stages.1.data", "trains on pairs"),
        ({"stages": [{"kind": "generate"}]}, "variants.v.stages.0.rewards", "the judge"),
        ({"stages": [GEN, DPO | {"rewards": [{"name": "exact_match"}]}]}, "variants.v.stages.1.rewards", "no rewards"),
        ({"stages": [GRPO | {"preference_loss": {"name": "contrastive_pg"}}]}, "variants.v.stages.0.preference_loss",
         "only dpo"),
        ({"stages": [GEN, DPO | {"preference_loss": {"name": "contrastive_pgg"}}]},
         "variants.v.stages.1.preference_loss.name", "did you mean 'contrastive_pg'"),
        ({"stages": [GEN, DPO | {"preference_loss": {"name": "contrastive_pg", "args": {"gamma": 1}}}]},
         "variants.v.stages.1.preference_loss.args.gamma", "unknown argument"),
        ({"stages": [GRPO | {"objective": {"expert": {"name": "scheduled"}}}]}, "variants.v.stages.0.objective.expert.name",
         "unknown expert mix"),
        ({"rounds": {"count": 0, "stages": [GEN, DPO]}}, "variants.v.rounds.count", "must be at least 1"),
        ({"stages": [GEN | {"dataset": "nope"}]}, "variants.v.stages.0.dataset", "no datasets config 'nope'"),
        ({"stages": [GEN, DPO | {"data_args": {"limit": 3}}]}, "variants.v.stages.1.data_args", "no data_args"),
        ({"stages": [GEN, RM, GRPO | {"data": "pool", "rewards": [{"name": "worst_group_reward"}]}]},
         "variants.v.stages.2.rewards.0.name", "reads a mixture"),
        ({"stages": [GEN, RM | {"args": {"num_groups": 2}}, GRPO | {"data": "pool", "rewards": [{"name": "learned_reward"}]}]},
         "variants.v.stages.2.rewards.0.name", "reads one reward model"),
        ({"stages": [GEN, RM | {"args": {"num_groups": 0}}]}, "variants.v.stages.1.args.num_groups", ">= 1"),
        ({"stages": [GEN, RM | {"args": {"num_groupz": 2}}]}, "variants.v.stages.1.args.num_groupz", "num_groupz"),
        ({"stages": [GRPO | {"rewards": [{"name": "length", "args": {"max_char": 4}}]}]},
         "variants.v.stages.0.rewards.0.args.max_char", "unknown argument (known: max_chars)"),
        ({"stages": [GRPO | {"rewards": [{"name": "length"}]}]}, "variants.v.stages.0.rewards.0.args.max_chars",
         "required argument missing"),
        ({"stages": [GEN, RM, GRPO | {"data": "pool", "rewards": [{"name": "process_reward"}]}]},
         "variants.v.stages.2.rewards.0.name", "earlier process_reward_model stage"),
        ({"stages": [GEN, {"kind": "process_reward_model", "data": "train"}]}, "variants.v.stages.1.data",
         "trains on samples"),
        ({"stages": [GEN, {"kind": "process_reward_model", "data": "generated", "args": {"step_labels": "running_totl"}}]},
         "variants.v.stages.1.args.step_labels", "did you mean 'running_total'"),
        ({"stages": [GEN | {"data": "pool", "rewards": [{"name": "format"}]},
                     {"kind": "process_reward_model", "data": "generated", "args": {"step_labels": "final_answer"}}]},
         "variants.v.stages.1.args.step_labels", "needs gold answers"),
        ({"stages": [GEN, {"kind": "process_reward_model", "data": "generated"}, RM,
                     GRPO | {"data": "pool", "rewards": [{"name": "process_reward"}, {"name": "learned_reward"}]}]},
         "variants.v.stages.3.rewards", "one kind per stage"),
        ({"stages": [GEN, {"kind": "process_reward_model", "data": "generated"},
                     GRPO | {"data": "pool", "rewards": [{"name": "process_reward", "args": {"aggregate": "max"}}]}]},
         "variants.v.stages.2.rewards.0.args", "aggregate 'max'"),
        ({"stages": [{"kind": "generate", "rewards": [{"name": "user_mixture", "args": {"groups": [{"name": "a", "users": 0,
          "rewards": [{"name": "exact_match"}]}]}}]}]}, "variants.v.stages.0.rewards.0.args", "groups.0.users: expected a whole number from 1"),
        ({"stages": [{"kind": "generate", "rewards": [{"name": "user_mixture", "args": {"groups": [{"name": "a", "users": 1,
          "rewards": [{"name": "majority_vote"}]}]}}]}]}, "variants.v.stages.0.rewards.0.args", "not a per-sample reward"),
    ],
)  # fmt: skip
def test_refusals_name_the_file_and_the_key(tmp_path, variant, key, words):
    err = refusal(tmp_path, v=variant)
    assert err.key == key and words in str(err), str(err)
