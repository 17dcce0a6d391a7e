"""A multi-stage bundle through Snakemake: rounds of generate -> dpo, a reward model feeding GRPO, an expert mix."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_snakemake, write_bundle

pytestmark = pytest.mark.slow

BUNDLE = """
paper: {title: multistage smoke}
variants:
  base: {description: untrained base}
  dno:
    rounds:
      count: 2
      stages:
        - {kind: generate, rewards: [{name: exact_match}, {name: length, weight: 0.1, args: {max_chars: 6}}]}
        - {kind: dpo, data: generated, preference_loss: {name: contrastive_pg}}
  rm:
    stages:
      - {kind: generate, rewards: [{name: exact_match}, {name: length, weight: 0.1, args: {max_chars: 6}}]}
      - {kind: reward_model, data: generated}
      - {kind: grpo, data: pool, rewards: [{name: learned_reward}]}
  chord:
    stages:
      - {kind: grpo, rewards: [{name: exact_match}], objective: {expert: {name: scheduled_sft}}}
scales:
  toy:
    model: toy-tiny
    eval: toy-smoke
    seeds: [0]
    trainers:
      grpo: {max_steps: 2, save_steps: 2, logging_steps: 1, per_device_train_batch_size: 16, num_generations: 4}
      dpo: {max_steps: 2, save_steps: 2, logging_steps: 1, per_device_train_batch_size: 4}
      reward_model: {max_steps: 2, save_steps: 2, logging_steps: 1, per_device_train_batch_size: 4}
      generate: {num_samples: 4, max_prompts: 16, max_new_tokens: 4}
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    wd = tmp_path_factory.mktemp("multistage")
    write_bundle(wd / "papers", "ms", BUNDLE)
    run_snakemake(wd)
    return wd


def summary(wd, variant: str, stage: int) -> dict:
    return json.loads((wd / f"results/runs/ms/toy/{variant}/seed0/stage{stage}/train.json").read_text())


def test_every_variant_is_trained_evaluated_and_ranked(workdir):
    board = json.loads((workdir / "results/runs/ms/toy/leaderboard.json").read_text())
    assert sorted(r["variant"] for r in board["rows"]) == ["base", "chord", "dno", "rm"]


def test_each_round_samples_from_the_policy_the_last_one_trained(workdir):
    run = "results/runs/ms/toy/dno/seed0"
    kinds = [summary(workdir, "dno", i)["kind"] for i in range(4)]
    assert kinds == ["generate", "dpo", "generate", "dpo"]
    assert summary(workdir, "dno", 0)["init_model"] == "results/world/models/toy-tiny"
    assert summary(workdir, "dno", 2)["init_model"] == f"{run}/stage1/model"  # round 2 samples round 1's policy
    assert summary(workdir, "dno", 3)["init_model"] == f"{run}/stage1/model"  # and trains from it
    assert (workdir / run / "stage2/pairs.jsonl").is_file()


def test_the_reward_model_scores_the_grpo_stage_and_is_not_the_policy(workdir):
    assert summary(workdir, "rm", 1)["kind"] == "reward_model"
    grpo = summary(workdir, "rm", 2)
    assert grpo["init_model"] == "results/world/models/toy-tiny"
    assert any("rewards/learned_reward/mean" in h for h in grpo["log_history"])
    assert (workdir / "results/runs/ms/toy/rm/seed0/stage1/model/config.json").is_file()


def test_expert_mix_logs_its_weight(workdir):
    logged = [h["expert/sft_weight"] for h in summary(workdir, "chord", 0)["log_history"] if "expert/sft_weight" in h]
    assert logged == pytest.approx([0.5, 0.25])  # mu decays linearly from 0.5 to 0 over the 2 steps


def test_the_same_jobs_in_another_bundle_are_reused_not_recomputed(workdir):
    """A second bundle with the same base, `dno` and `rm` (its GRPO stage rewarded otherwise): every job it shares
    with `ms` is a copy of ms's (harness/reuse.py), down to the files; the changed GRPO stage and what follows run."""
    import os

    import yaml

    other = yaml.safe_load(BUNDLE)
    other["paper"]["title"] = "the same stages in another bundle"
    del other["variants"]["chord"]
    other["variants"]["rm"]["stages"][2]["rewards"] = [{"name": "learned_reward", "weight": 2.0}]
    write_bundle(workdir / "papers", "ms2", yaml.safe_dump(other, sort_keys=False))
    run_snakemake(workdir)  # every bundle here: ms has nothing to do

    def run(paper, variant):
        return workdir / f"results/runs/{paper}/toy/{variant}/seed0"

    for i in range(4):
        copy, made = summary_of(run("ms2", "dno"), i), summary_of(run("ms", "dno"), i)
        # from ms's folder, or from a copy of it made earlier in this run (rm's first stage is dno's too)
        assert copy["reused_from"].startswith("results/runs/ms")
        assert {k: v for k, v in copy.items() if k not in ("reused_from", "init_model")} == {
            k: v for k, v in made.items() if k != "init_model"
        }  # the same numbers: what was computed once
        assert f"reused {copy['reused_from']}" in (run("ms2", "dno") / f"stage{i}/train.log").read_text()
    assert summary_of(run("ms2", "dno"), 3)["init_model"] == "results/runs/ms2/toy/dno/seed0/stage1/model"  # its own
    weights = "stage3/model/model.safetensors"
    assert os.stat(run("ms2", "dno") / weights).st_ino == os.stat(run("ms", "dno") / weights).st_ino  # linked
    assert not (run("ms2", "dno") / "stage3/checkpoints").exists()
    for variant in ("base", "dno"):
        copy, made = (json.loads((run(p, variant) / "eval/metrics.json").read_text()) for p in ("ms2", "ms"))
        assert copy["metrics"] == made["metrics"] and copy["reused_from"] == f"results/runs/ms/toy/{variant}/seed0/eval"
        assert "reused_from" not in made
        assert copy["model"] != made["model"] or variant == "base"  # the model this run evaluated, by its path
    assert [("reused_from" in summary_of(run("ms2", "rm"), i)) for i in range(3)] == [True, True, False]
    assert "reused_from" not in json.loads((run("ms2", "rm") / "eval/metrics.json").read_text())
    board = json.loads((workdir / "results/runs/ms2/toy/leaderboard.json").read_text())
    assert sorted(r["variant"] for r in board["rows"]) == ["base", "dno", "rm"]


def summary_of(run_dir, stage: int) -> dict:
    return json.loads((run_dir / f"stage{stage}/train.json").read_text())


def test_a_second_run_has_nothing_to_do(workdir):
    proc = run_snakemake(workdir, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr
