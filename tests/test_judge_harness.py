"""How the harness builds, fetches, plans and hands over the model a generative judge reads (harness/rewards/judge.py):
config, plan, hub, memory plan, evaluation suites, and a toy model fine-tuned from another (how the toy judge is
made)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from harness.config.errors import ConfigError
from harness.config.stage import RewardSpec
from harness.world.verdicts import VerdictSpec, make_splits
from tests.conftest import write_bundle
from tests.test_judge import TEMPLATE, direct_probability

# -- the harness around it: config, plan, hub, memory

BUNDLE = """
paper: {title: a judged paper}
variants:
  base: {}
  plain:
    stages: [{kind: grpo, data: train, rewards: [{name: exact_match}]}]
  judged:
    stages: [{kind: grpo, data: train, rewards: [{name: judge, args: {model: toy-sum-judge,
              template: "{prompt}{completion}?"}}]}]
scales:
  toy: {}
  paper:
    stages:
      judged.stages.0: {rewards: [{name: judge_with_reference, args: {model: MODEL, chat: true,
                        template: "Question: {prompt} Reference: {answer} Response: {completion} Correct?"}}]}
"""


def test_the_judge_model_is_built_before_the_stage_and_handed_to_it(tmp_path):
    from harness.plan import Plan

    write_bundle(tmp_path, "judged", BUNDLE.replace("MODEL", "qwen2.5-7b-instruct"))
    plan = Plan(["judged"], "toy", papers_dir=tmp_path)
    run = plan.run("judged", "judged", 0)
    assert "results/world/models/toy-sum-judge/pretrain.json" in plan.stage_inputs(run, 0)
    assert plan.stage_job(run, 0).models == {"toy-sum-judge": "results/world/models/toy-sum-judge"}
    assert "toy-sum-judge" in plan.toy_models()  # so the pretrain rule builds it


def test_a_hub_judge_is_fetched_pinned_read_offline_and_planned_in_memory(tmp_path):
    from harness.config.read import load_component
    from harness.hub import model_marker, paper_items
    from harness.memory import GiB, plan_paper
    from harness.offline import local_model, offline_stage, run_revisions
    from harness.plan import Plan

    write_bundle(tmp_path, "judged", BUNDLE.replace("MODEL", "qwen2.5-7b-instruct"))
    plan = Plan(["judged"], "paper", papers_dir=tmp_path)
    rp, run = plan.papers["judged"], plan.run("judged", "judged", 0)
    judge_cfg = load_component("models", "qwen2.5-7b-instruct", tmp_path, "test")
    assert model_marker(judge_cfg) in plan.stage_hub_inputs(run, 0)
    assert "Qwen/Qwen2.5-7B-Instruct" in [i.repo_id for i in paper_items(rp)]
    assert run_revisions(rp, "judged")["hub.model.Qwen/Qwen2.5-7B-Instruct"] == str(judge_cfg.revision)
    job = plan.stage_job(run, 0)
    assert job.models == {"qwen2.5-7b-instruct": "Qwen/Qwen2.5-7B-Instruct"}
    root, sha = tmp_path / "hf", "a" * 40  # both models pinned and in the hub cache, as `harness fetch` leaves them
    pinned = {n: dataclasses.replace(m, revision=sha) for n, m in rp.models.items()}
    for m in pinned.values():
        (root / "hub" / f"models--{m.hub_id.replace('/', '--')}" / "snapshots" / sha).mkdir(parents=True)
    job = dataclasses.replace(job, dataset=dataclasses.replace(job.dataset, revision=sha))
    (root / "hub" / f"datasets--{job.dataset.hub_path.replace('/', '--')}" / "snapshots" / sha).mkdir(parents=True)
    offline = offline_stage(job, pinned[rp.variants["judged"].model], root, {"qwen2.5-7b-instruct": pinned[
        "qwen2.5-7b-instruct"]})  # fmt: skip
    assert offline.models == {"qwen2.5-7b-instruct": local_model("Qwen/Qwen2.5-7B-Instruct", sha, root)}
    assert offline.model == local_model(pinned[rp.variants["judged"].model].hub_id, sha, root)
    judged, base = (next(p for p in plan_paper(rp, 80.0) if p.variant == v) for v in ("judged", "plain"))
    assert judged.estimate.parts["judges"] == pytest.approx(judge_cfg.architecture.params * 2)
    assert "judges" not in base.estimate.parts
    assert judged.estimate.total - base.estimate.total == pytest.approx(judge_cfg.architecture.params * 2, rel=0.01)
    assert judged.estimate.parts["judges"] / GiB > 14  # a 7B judge in bf16


def test_an_unknown_judge_model_names_the_stage_key(tmp_path):
    from harness.config.load import load_paper

    write_bundle(tmp_path, "judged", BUNDLE.replace("MODEL", "no-such-judge"))
    with pytest.raises(ConfigError, match=r"scales\.paper\.stages\.judged\.stages\.0\.rewards\.0\.args\.model|"
                                          r"variants\.judged\.stages\.0\.rewards\.0\.args\.model") as e:  # fmt: skip
        load_paper("judged", "paper", papers_dir=tmp_path)
    assert "no-such-judge" in str(e.value)


# -- judges in an evaluation suite


def test_an_eval_suite_judge_scores_every_response_with_the_frozen_model(world):
    from harness.config.components import JudgeSpec
    from harness.evaluation.evaluate import judge_metrics

    root, _ = world
    spec = RewardSpec(name="judge", args={"model": "toy-sum-judge", "template": TEMPLATE})
    got = judge_metrics([JudgeSpec("sums", [spec])], [["46", "47"], ["15"]], ["46", "15"], ["12+34=", "7+8="], [0, 1],
                        models={"toy-sum-judge": str(root / "model")})  # fmt: skip
    texts = ["12+34=46?", "12+34=47?", "7+8=15?"]
    assert got["judge/sums"] == pytest.approx(sum(direct_probability(root / "model", t) for t in texts) / 3, abs=1e-5)
    with pytest.raises(ValueError, match="reads model 'toy-sum-judge', which was not given"):
        judge_metrics([JudgeSpec("sums", [spec])], [["46"]], ["46"], ["12+34="], [0])


def test_a_suite_judges_model_is_built_before_the_evaluation_and_an_unknown_one_named(tmp_path, monkeypatch):
    from harness.config import load, read
    from harness.layout import CONFIGS
    from harness.plan import Plan

    write_bundle(tmp_path, "judged", BUNDLE.replace("MODEL", "qwen2.5-7b-instruct").replace(
        "  toy: {}", "  toy: {eval: toy-arith-judged}"))  # fmt: skip
    plan = Plan(["judged"], "toy", papers_dir=tmp_path)
    run = plan.run("judged", "base", 0)
    assert "results/world/models/toy-sum-judge/pretrain.json" in plan.eval_inputs(run)
    assert plan.judge_models("judged") == {"toy-sum-judge": "results/world/models/toy-sum-judge"}
    configs = tmp_path / "configs"
    for kind in ("models", "datasets", "eval", "scales"):
        (configs / kind).mkdir(parents=True)
        for f in (CONFIGS / kind).glob("*.yaml"):
            (configs / kind / f.name).write_text(f.read_text())
    suite = configs / "eval" / "toy-arith-judged.yaml"
    suite.write_text(suite.read_text().replace("model: toy-sum-judge", "model: no-such-judge"))
    monkeypatch.setattr(read, "CONFIGS", configs)
    with pytest.raises(ConfigError, match=r"toy-arith-judged\.yaml: judges\.0\.rewards\.0\.args\.model") as e:
        load.load_paper("judged", "toy", papers_dir=tmp_path)
    assert "no-such-judge" in str(e.value)


# -- a toy model fine-tuned from another (toy.init_from): how the toy judge is made


def test_a_toy_model_can_start_from_another_and_keeps_its_tokenizer(world, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.world.splits import write_rows
    from harness.world.toy_model import ToyModelSpec, pretrain

    root, _ = world
    splits = make_splits(VerdictSpec(n_train=16, n_pool=4, n_test=8, n_pretrain=64))
    write_rows(splits, tmp_path / "data")
    start = AutoModelForCausalLM.from_pretrained(root / "model")
    summary = pretrain(ToyModelSpec(pretrain_steps=2, batch_size=8, init_from="toy-arith"), tmp_path / "data",
                       tmp_path / "no-tokenizer-here", tmp_path / "judge", log_every=1, init_dir=root / "model")  # fmt: skip
    assert summary["steps"] == 2
    tuned = AutoModelForCausalLM.from_pretrained(tmp_path / "judge")
    assert tuned.config.hidden_size == start.config.hidden_size == 32  # the fixture's architecture, not the spec's 128
    assert AutoTokenizer.from_pretrained(tmp_path / "judge").get_vocab() == AutoTokenizer.from_pretrained(
        root / "model").get_vocab()  # fmt: skip
    moved = [n for n, p in tuned.named_parameters() if not torch.equal(p, dict(start.named_parameters())[n])]
    assert moved  # fine-tuned, not copied


@pytest.mark.parametrize(
    "init, message",
    [("toy-sum-judge", "a model cannot start from itself"), ("no-such-model", "no model config")],
)
def test_init_from_names_another_toy_model_config(tmp_path, monkeypatch, init, message):
    from harness.config import read
    from harness.layout import CONFIGS

    models = tmp_path / "models"
    models.mkdir()
    text = (CONFIGS / "models" / "toy-sum-judge.yaml").read_text().replace("init_from: toy-arith", f"init_from: {init}")
    (models / "toy-sum-judge.yaml").write_text(text)
    monkeypatch.setattr(read, "CONFIGS", tmp_path)
    with pytest.raises(ConfigError, match=f"toy.init_from: {message}"):
        read.load_component("models", "toy-sum-judge", tmp_path, "test")


def test_the_judge_waits_for_the_model_it_starts_from(tmp_path):
    from harness.plan import Plan

    write_bundle(tmp_path, "judged", BUNDLE.replace("MODEL", "qwen2.5-7b-instruct").replace("  plain:\n    stages: [{kind: grpo, data: train, rewards: [{name: exact_match}]}]\n", ""))  # fmt: skip
    plan = Plan(["judged"], "toy", papers_dir=tmp_path)
    assert "results/world/models/toy-arith/pretrain.json" in plan.pretrain_inputs("toy-sum-judge")
    assert {"toy-arith", "toy-sum-judge"} <= set(plan.toy_models())
    assert plan.model_fingerprint("toy-sum-judge") != Plan(["judged"], "toy", papers_dir=tmp_path).model_fingerprint(
        "toy-arith")  # fmt: skip
