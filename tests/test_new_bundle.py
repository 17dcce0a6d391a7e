"""A paper that only recombines registered pieces needs no Python: a fresh bundle, written here, runs.

The bundle mixes pieces no shipped bundle combines this way (virtual-max advantages, clip-higher,
sequence-level aggregation, an entropy bonus, label noise, a brevity term), and its run must train
with exactly those pieces: the resolved objective is logged to MLflow with the run.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_snakemake, write_bundle

pytestmark = pytest.mark.slow

BUNDLE = """
# An invented method: NGRPO advantages with clip-higher, sequence-mean loss and an entropy bonus,
# trained on labels of which a quarter are wrong.
paper: {title: recombined pieces}
variants:
  base: {}
  invented:
    stages:
      - kind: grpo
        data: train
        data_args: {label_noise: 0.25, seed: 3}
        rewards: [{name: exact_match}, {name: length, weight: 0.1, args: {max_chars: 6}}]
        objective:
          advantage: {name: virtual_max, args: {max_reward: 1.1}}
          loss: {name: clipped_surrogate, args: {epsilon_low: 0.1, epsilon_high: 0.3}}
          aggregation: sequence_mean
          aux: [{name: entropy_bonus, args: {coef: 0.01}}]
scales:
  toy:
    model: toy-tiny
    eval: toy-smoke
    seeds: [0]
    trainers:
      grpo: {max_steps: 3, save_steps: 10, logging_steps: 1, per_device_train_batch_size: 16, num_generations: 4}
claims:
  - {statement: the invented method scores at least as well as the base, lhs: invented, op: ">=", rhs: base}
"""


def test_fresh_bundle_of_existing_pieces_runs_end_to_end(tmp_path):
    write_bundle(tmp_path / "papers", "recombined", BUNDLE)
    run_snakemake(tmp_path)
    board = json.loads((tmp_path / "results/runs/recombined/toy/leaderboard.json").read_text())
    assert sorted(r["variant"] for r in board["rows"]) == ["base", "invented"]
    assert board["claims"][0]["verdict"] in ("holds", "does not hold", "inconclusive", "saturated")

    run = tmp_path / "results/runs/recombined/toy/invented/seed0"
    log = json.loads((run / "stage0/train.json").read_text())["log_history"]
    logged = {k for entry in log for k in entry}
    assert {"aux/entropy_bonus", "rewards/length/mean", "rewards/exact_match/mean"} <= logged
    assert log[-1]["step"] == 3

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    tracked = json.loads((run / "tracked.json").read_text())
    params = mlflow.get_run(tracked["run_id"]).data.params
    objective = {k: v for k, v in params.items() if "objective" in k}
    assert any("virtual_max" in v for v in objective.values()), objective
    assert any("label_noise" in k for k in params), sorted(params)
