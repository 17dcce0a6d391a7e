"""Evaluation during training and protocol records, end to end: a bundle asking for checkpoint evals runs
through Snakemake; each checkpoint is its own job, and the run's accuracy over training steps, its
protocol and its pass@k plot land in results/ and MLflow."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, run_snakemake, write_bundle

pytestmark = pytest.mark.slow

BUNDLE = """
# GRPO on the hardest half of the training rows, with its checkpoints evaluated during training.
paper: {title: evaluation during training}
variants:
  base: {}
  grpo:
    stages:
      - kind: grpo
        data: train
        data_args: {lowest_likelihood: 0.5}
        rewards: [{name: exact_match}]
scales:
  toy:
    model: toy-tiny
    eval: toy-smoke
    seeds: [0]
    eval_checkpoints: 2
    trainers:
      grpo: {max_steps: 3, save_steps: 10, logging_steps: 1, per_device_train_batch_size: 16, num_generations: 4}
claims:
  - {statement: the base scores at least zero, lhs: base, op: ">=", rhs: "0"}
"""


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    wd = tmp_path_factory.mktemp("during")
    write_bundle(wd / "papers", "during", BUNDLE)
    dry = run_snakemake(wd, "-n")
    assert dry.stdout.count("rule evaluate_checkpoint:") == 2, dry.stdout[-3000:]
    run_snakemake(wd)
    return wd


def test_checkpoints_are_saved_and_evaluated_as_their_own_jobs(done):
    stage = done / "results/runs/during/toy/grpo/seed0/stage0"
    assert sorted(p.name for p in (stage / "snapshots").iterdir()) == ["step1", "step2"]
    for step in (1, 2):
        result = json.loads((stage / f"evals/step{step}/metrics.json").read_text())
        assert result["model"].endswith(f"snapshots/step{step}")
        assert result["protocol"]["n_samples"] == 4
        assert (stage / f"evals/step{step}/eval.log").is_file()
    assert "kept 250 of 500 rows" in (stage / "train.log").read_text()  # the curated half of toy-arith's train split


def test_accuracy_over_training_and_protocol_land_in_mlflow(done):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{done / 'results' / 'mlflow.db'}")
    run_dir = done / "results/runs/during/toy/grpo/seed0"
    run_id = json.loads((run_dir / "tracked.json").read_text())["run_id"]
    history = mlflow.MlflowClient().get_metric_history(run_id, "during/toy_arith/pass_at_1")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == [1, 2, 3]
    final = json.loads((run_dir / "eval/metrics.json").read_text())
    assert max(history, key=lambda m: m.step).value == pytest.approx(final["metrics"]["toy_arith"]["pass@1"])
    params = mlflow.get_run(run_id).data.params
    assert params["protocol.engine"] == "hf" and params["protocol.n_samples"] == "4"
    assert params["protocol.extractors.toy_arith"] == "boxed_or_last_number@1"
    assert (run_dir / "eval/passk.png").stat().st_size > 1000


def test_base_and_trained_results_share_a_protocol(done):
    runs = done / "results/runs/during/toy"
    proc = subprocess.run([sys.executable, "-m", "harness", "compare", str(runs / "base/seed0/eval"),
                           str(runs / "grpo/seed0/eval")], capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("same protocol")
    board = json.loads((runs / "leaderboard.json").read_text())
    assert all(r["protocol"]["engine"] == "hf" and not r["protocol_departures"] for r in board["rows"])
