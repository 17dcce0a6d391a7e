"""The process_reward_model stage (a tiny real run), its step labelers and encoding, the process_reward reward
that reads it back, and the configs that wire them."""

from __future__ import annotations

import json

import pytest
import torch

from harness.config.schema import Stage
from harness.rewards import REWARDS
from harness.rewards.steps import encode, split_steps
from harness.stages.process_reward_model import step_examples
from tests.conftest import run_stage

PRM_ARGS = dict(max_steps=40, per_device_train_batch_size=8, save_steps=1000, logging_steps=10, learning_rate=3e-3,
                step_separator=";", step_labels="running_total")  # fmt: skip


def write_samples(folder, rows) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(folder)


# Right steps vary; a wrong one always starts `99;`: learnable by a tiny model in a few steps.
SAMPLES = [{"id": i, "prompt": f"{i}+1+2=", "answer": str(i + 3), "completions": [f"{i + 1};{i + 3}", f"99;{i + 3}"],
            "scores": [1.0, 1.0]} for i in range(40)]  # fmt: skip


def test_step_examples_label_each_steps_last_token(world):
    from transformers import AutoTokenizer

    root, _ = world
    tok = AutoTokenizer.from_pretrained(root / "model")
    sample = {"prompt": "12+34+5=", "answer": "51", "completions": ["46;51", "46;51", "46;50", "47;51", ";"]}
    examples = step_examples([sample], "running_total", ";", tok)
    assert len(examples) == 3  # a repeated completion counts once; one with no step is left out
    for e, completion, want in zip(examples, ["46;51", "46;50", "47;51"], [[1, 1], [1, 0], [0, 0]], strict=True):
        ids, ends = encode(tok, sample["prompt"], split_steps(completion, ";"))
        assert e["input_ids"] == ids and [e["labels"][i] for i in ends] == want
        assert sum(x != -100 for x in e["labels"]) == 2
        assert tok.decode(ids[ends[0]]).endswith(";")  # the first step ends on its separator


def test_step_consistency_labels_each_step_by_its_positions_majority_without_gold(world):
    """By hand: the group's first steps are 46, 46, 46, 47 (majority 46); its second 51, 51, 50, 51 (majority 51).
    No gold answer is read, and the wrong majority is followed as readily: labels are agreement, not truth."""
    from transformers import AutoTokenizer

    root, _ = world
    tok = AutoTokenizer.from_pretrained(root / "model")
    sample = {"prompt": "12+34+5=", "answer": None, "completions": ["46;51", "46;51", "46;50", "47;51"]}
    examples = step_examples([sample], "step_consistency", ";", tok)
    labels = [[e["labels"][i] for i in encode(tok, sample["prompt"], split_steps(c, ";"))[1]]
              for e, c in zip(examples, ["46;51", "46;50", "47;51"], strict=True)]  # fmt: skip
    assert labels == [[1, 1], [1, 0], [0, 0]]
    wrong = {**sample, "completions": ["47;52", "47;52", "46;51"]}  # the majority is wrong: it still sets the labels
    labels = [
        [e["labels"][i] for i in encode(tok, wrong["prompt"], split_steps(c, ";"))[1]]
        for e, c in zip(step_examples([wrong], "step_consistency", ";", tok), ["47;52", "46;51"], strict=True)
    ]
    assert labels == [[1, 1], [0, 0]]


@pytest.fixture(scope="module")
def prm(world, tmp_path_factory):
    root, dataset = world
    gen = write_samples(tmp_path_factory.mktemp("gen"), SAMPLES)
    out = tmp_path_factory.mktemp("prm")
    st = Stage(kind="process_reward_model", data="generated", rewards=[], args=PRM_ARGS)
    summary = run_stage(st, str(root / "model"), dataset, None, 0, out, "fp", upstream={"pairs": gen})
    return out / "model", summary


def test_process_reward_model_stage_learns_step_labels_that_process_reward_reads(prm):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    folder, summary = prm
    assert summary["kind"] == "process_reward_model" and summary["global_step"] == 40
    assert json.loads((folder / "prm.json").read_text()) == {"step_separator": ";", "step_labels": "running_total"}
    fn = REWARDS.get("process_reward").build(model=str(folder), aggregate="min")
    prompts = [s["prompt"] for s in SAMPLES[:6]]
    right, wrong = [s["completions"][0] for s in SAMPLES[:6]], [s["completions"][1] for s in SAMPLES[:6]]
    got = fn(right + wrong, prompts * 2)
    tok, clf = AutoTokenizer.from_pretrained(folder), AutoModelForTokenClassification.from_pretrained(folder)
    for p, c, score in zip(prompts * 2, right + wrong, got, strict=True):  # one sequence at a time: no padding
        ids, ends = encode(tok, p, split_steps(c, ";"))
        probs = clf(torch.tensor([ids])).logits[0].softmax(-1)[:, 1]
        assert score == pytest.approx(min(probs[e].item() for e in ends), abs=1e-5)
    assert sum(got[:6]) / 6 > sum(got[6:]) / 6  # it learned which first steps are wrong
    assert fn(["", ";"], ["1+2=", "1+2="]) == [0.0, 0.0]  # no step: no reward


def test_grpo_with_a_process_reward_scores_with_the_trained_model(world, prm, tmp_path):
    from tests.test_stages import grpo_on_scorer

    log = grpo_on_scorer(world, "process_reward", prm[0], tmp_path)
    rewards = [h["rewards/process_reward/mean"] for h in log if "rewards/process_reward/mean" in h]
    assert rewards and all(0.0 <= r <= 1.0 for r in rewards)


def test_samples_without_answers_are_refused(world, tmp_path):
    root, dataset = world
    rows = [{k: v for k, v in SAMPLES[0].items() if k != "answer"}]
    gen = write_samples(tmp_path / "gen", rows)
    st = Stage(kind="process_reward_model", data="generated", rewards=[], args=PRM_ARGS)
    with pytest.raises(ValueError, match="no `answer`"):
        run_stage(st, str(root / "model"), dataset, None, 0, tmp_path / "prm", "fp", upstream={"pairs": gen})


def test_a_process_reward_reads_the_latest_process_reward_model(tmp_path):
    from harness.layout import stage_dir
    from harness.plan import Plan
    from tests.test_stage_config import GEN, RM, bundle

    prm = {"kind": "process_reward_model", "data": "generated"}
    grpo = {"kind": "grpo", "data": "pool", "rewards": [{"name": "process_reward"}]}
    slug = bundle(tmp_path, e2h={"stages": [GEN, prm, RM, grpo]})
    plan = Plan([slug], "toy", tmp_path)
    run = plan.run(slug, "e2h", 0)
    assert plan.upstream(run, 1) == {"pairs": stage_dir(run, 0)}
    assert plan.upstream(run, 3) == {"reward_model": f"{stage_dir(run, 1)}/model"}  # not the later reward_model
    assert plan.model_after(run, 3) == plan.base_model(slug, "e2h")  # neither scorer is the policy
