"""The small-real scale's code paths on the real SmolLM2-135M-Instruct: chat-template prompts, a GRPO stage
graded from free text, and the word-problem evaluation through lm-eval (a few steps and questions: ~1 min)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.config.components import EvalConfig
from harness.config.load import load_paper
from harness.evaluation.evaluate import evaluate
from harness.grader import is_correct
from harness.world.splits import write_rows
from harness.world.word_problems import WordProblemSpec, make_splits
from tests.conftest import run_stage

SPEC = WordProblemSpec(n_train=16, n_pool=16, n_test=8, n_pretrain=0)


@pytest.fixture(scope="module")
def word_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("word-problems")
    write_rows(make_splits(SPEC), out)
    return out


def test_chat_prompts_are_user_turns_awaiting_the_reply(smollm2):
    import datasets
    from transformers import AutoTokenizer

    from harness.stages.data import chat_prompts

    tok = AutoTokenizer.from_pretrained(str(smollm2))
    rows = datasets.Dataset.from_list([{"prompt": "Ava has 3 figs. How many figs does Ava have now?", "answer": "3"}])
    (row,) = chat_prompts(rows, tok)
    assert row["answer"] == "3"
    assert "<|im_start|>user\nAva has 3 figs. How many figs does Ava have now?<|im_end|>" in row["prompt"]
    assert row["prompt"].endswith("<|im_start|>assistant\n")


def test_chat_prompts_refuse_a_model_without_a_template(world):
    import datasets
    from transformers import AutoTokenizer

    from harness.stages.data import chat_prompts

    root, _ = world
    with pytest.raises(ValueError, match="apply_chat_template: .* has no chat template"):
        chat_prompts(datasets.Dataset.from_list([{"prompt": "1+2="}]), AutoTokenizer.from_pretrained(str(root / "tok")))


@pytest.mark.slow
def test_grpo_stage_then_word_problem_eval_on_the_real_model(smollm2, word_data, tmp_path):
    import dataclasses

    from transformers import AutoTokenizer

    rp = load_paper("ttrl-majority-vote", "small-real")
    assert rp.dataset.source == "toy-word-problems" and rp.eval.apply_chat_template
    stage = rp.variants["gold_grpo"].stages[0]
    assert stage.args["apply_chat_template"] is True
    small = {"max_steps": 2, "per_device_train_batch_size": 4, "num_generations": 2, "max_completion_length": 12,
             "save_steps": 1, "logging_steps": 1}  # fmt: skip
    stage = dataclasses.replace(stage, args=stage.args | small)
    summary = run_stage(stage, str(smollm2), rp.dataset, word_data, 0, tmp_path / "stage0", "fp")
    assert summary["global_step"] == 2
    logged = [h for h in summary["log_history"] if "reward" in h]
    assert len(logged) == 2 and all(0.0 <= h["reward"] <= 1.0 for h in logged)
    assert all(0 < h["completions/mean_length"] <= 12 for h in logged)
    model = tmp_path / "stage0" / "model"
    assert AutoTokenizer.from_pretrained(str(model)).chat_template  # the template travels with the trained model

    cfg = EvalConfig(**(vars(rp.eval) | {"limit": 4, "max_new_tokens": 24, "batch_size": 4}))
    result = evaluate(str(model), cfg, 0, tmp_path / "eval", str(word_data))
    m = result["metrics"]["toy_word_problems"]
    assert m["questions"] == 4 and m["samples_per_question"] == 1
    template = AutoTokenizer.from_pretrained(str(model)).chat_template
    import hashlib

    assert result["protocol"]["chat_template_sha"] == hashlib.sha256(template.encode()).hexdigest()[:16]
    samples = [json.loads(line) for line in (tmp_path / "eval" / "samples.jsonl").read_text().splitlines()]
    tests = {i: r for i, r in enumerate(make_splits(SPEC)["test"])}
    correct = []
    for s in samples:
        (response,) = s["responses"]
        assert "<|im_end|>" not in response and response.strip()
        assert s["target"] == tests[s["doc_id"]]["answer"]
        correct.append(is_correct(response, s["target"]))  # graded again, independently of the pipeline
    assert m["pass@1"] == pytest.approx(sum(correct) / 4)


@pytest.mark.slow
def test_sft_stage_with_chat_prompts_on_the_real_model(smollm2, word_data, tmp_path, monkeypatch):
    from harness.config.schema import Stage
    from harness.stages import sft

    rp = load_paper("ttrl-majority-vote", "small-real")
    seen = []

    def build_and_record(job, rows, ckpt_dir):
        seen.extend(rows)
        return real_build(job, rows, ckpt_dir)

    real_build = sft.build_trainer
    monkeypatch.setattr(sft, "build_trainer", build_and_record)
    args = {"learning_rate": 1e-5, "max_steps": 2, "per_device_train_batch_size": 2, "apply_chat_template": True,
            "save_steps": 2, "logging_steps": 1}  # fmt: skip
    stage = Stage(kind="sft", data="train", rewards=[], args=args)
    summary = run_stage(stage, str(smollm2), rp.dataset, word_data, 0, tmp_path / "sft", "fp")
    assert summary["global_step"] == 2
    losses = [h["loss"] for h in summary["log_history"] if "loss" in h]
    assert len(losses) == 2 and all(0 < x < 20 for x in losses)
    first = make_splits(SPEC)["train"][0]
    assert seen[0]["prompt"].startswith("<|im_start|>system") and first["prompt"] in seen[0]["prompt"]
    assert seen[0]["prompt"].endswith("<|im_start|>assistant\n") and seen[0]["solution"] == first["solution"]
