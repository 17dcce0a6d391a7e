"""One small real run through Snakemake, TRL, lm-eval and MLflow, in a temporary working directory.

Also checks the DAG's promises: a no-change re-run does nothing, changing one value of a paper
re-runs only the jobs that depend on it, and re-tracking updates the same MLflow run.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.conftest import run_snakemake

pytestmark = pytest.mark.slow

BUNDLE = """
# A smoke bundle: two methods and the base on a barely trained tiny model, 2 seeds, 4 GRPO steps.
paper: {title: smoke test}
variants:
  base: {description: untrained base}
  gold:
    stages: [{kind: grpo, data: train, rewards: [{name: exact_match}]}]
  vote:
    stages: [{kind: grpo, data: pool, rewards: [{name: majority_vote}]}]
scales:
  toy:
    model: toy-tiny
    eval: toy-smoke
    seeds: [0, 1]
    trainers:
      grpo: {max_steps: 4, save_steps: 2, logging_steps: 1, per_device_train_batch_size: 16, num_generations: 4}
claims:
  - {statement: the base scores at least nothing, lhs: base, op: ">=", rhs: "0"}
"""


def jobs_in_dry_run(out: str) -> dict[str, int]:
    """{rule: count} from the job-stats table of `snakemake -n`."""
    table = out.split("Job stats:", 1)[1] if "Job stats:" in out else ""
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m[1] != "total"}


SECRETS = {
    "HF_TOKEN": "hf_e2eSecretToken0123456789",
    "HUGGING_FACE_HUB_TOKEN": "hf_e2eOtherSecret9876543210",
    "MLFLOW_TRACKING_TOKEN": "mlflow-e2e-secret-token-42",
    "MLFLOW_TRACKING_PASSWORD": "mlflow-e2e-secret-password-42",
    "PGPASSWORD": "pg-e2e-secret-password-42",
    "DATABASE_URL": "postgresql://harness:db-e2e-secret-42@localhost/mlflow",
}
"""Credentials a user may have in the environment: the run below has them, and none may land in what it writes."""


@pytest.fixture(scope="module")
def workdir(smoke_run):
    return smoke_run  # tests/conftest.py: the smoke bundle run once per session (test_ui reads it too)


def test_no_credential_from_the_environment_lands_in_results_logs_or_mlflow(workdir):
    needles = [v.encode() for v in SECRETS.values()] + [b"db-e2e-secret-42"]
    files = [f for f in workdir.rglob("*") if f.is_file() and "papers" not in f.relative_to(workdir).parts]
    assert any(f.name == "mlflow.db" for f in files) and any(f.suffix == ".log" for f in files)
    leaks = [(str(f.relative_to(workdir)), n.decode()) for f in files for n in needles if n in f.read_bytes()]
    assert leaks == []
    runs = mlflow_runs(workdir, "run")
    assert runs
    for run in runs:
        recorded = " ".join(f"{k}={v}" for d in (run.data.params, run.data.tags) for k, v in d.items())
        assert [n.decode() for n in needles if n.decode() in recorded] == []


def mlflow_runs(wd, kind: str) -> list:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{wd / 'results' / 'mlflow.db'}")
    exp = mlflow.get_experiment_by_name("smoke")
    return mlflow.search_runs(
        [exp.experiment_id], filter_string=f"tags.`harness.kind` = '{kind}'", output_format="list"
    )


def test_leaderboard_has_every_variant_with_seed_spread(workdir):
    board = json.loads((workdir / "results/runs/smoke/toy/leaderboard.json").read_text())
    assert sorted(r["variant"] for r in board["rows"]) == ["base", "gold", "vote"]
    for row in board["rows"]:
        assert row["metrics"]["pass@1"]["n"] == 2
        assert 0.0 <= row["metrics"]["pass@1"]["mean"] <= 1.0
        assert row["metrics"]["pass@4"]["mean"] >= row["metrics"]["pass@1"]["mean"]
    assert board["claims"][0]["verdict"] == "holds"
    page = (workdir / "results/reports/smoke-toy.html").read_text()
    assert "Reported vs reproduced" in page and "| vote |" not in page and "<td>vote</td>" in page
    assert (workdir / "results/reports/smoke-toy/passk.png").stat().st_size > 1000
    assert "smoke-toy.html" in (workdir / "results/reports/index.html").read_text()
    printed = subprocess.run(
        [sys.executable, "-m", "harness", "leaderboard"], cwd=workdir, capture_output=True, text=True
    )
    assert printed.returncode == 0 and "| vote |" in printed.stdout and "± " in printed.stdout


def test_snakemake_report_attaches_the_plots(workdir):
    run_snakemake(workdir, "--report", "results/reports/snakemake-report.html")
    page = (workdir / "results/reports/snakemake-report.html").read_text()
    assert "passk.png" in page and "training.png" in page


def test_training_wrote_checkpoints_and_curves(workdir):
    stage = workdir / "results/runs/smoke/toy/gold/seed0/stage0"
    log = json.loads((stage / "train.json").read_text())
    assert log["global_step"] == 4
    assert any("reward" in entry for entry in log["log_history"])
    assert (stage / "checkpoints" / "checkpoint-4").is_dir()
    assert (stage / "model" / "config.json").is_file()


def test_mlflow_mirrors_results(workdir, monkeypatch):
    runs = mlflow_runs(workdir, "run")
    assert len(runs) == 6  # 3 variants x 2 seeds
    for r in runs:
        tags, metrics = r.data.tags, r.data.metrics
        assert {"paper", "variant", "seed", "git_commit", "harness.config_hash", "version.trl"} <= set(tags)
        assert "toy_arith/pass_at_1" in metrics
        evaluated = json.loads(
            (workdir / f"results/runs/smoke/toy/{tags['variant']}/seed{tags['seed']}/eval/metrics.json").read_text()
        )
        assert metrics["toy_arith/pass_at_1"] == pytest.approx(evaluated["metrics"]["toy_arith"]["pass@1"])
        assert r.data.params["eval.n_samples"] == "4"
        assert (
            0 <= float(tags["base.greedy_accuracy"]) <= 1 and int(tags["base.pretrain_steps"]) >= 1
        )  # the base's skill
        if tags["variant"] != "base":
            assert "train/reward" in metrics
    board = json.loads((workdir / "results/runs/smoke/toy/leaderboard.json").read_text())
    means = {r["variant"]: r["metrics"]["pass@1"]["mean"] for r in board["rows"]}
    aggregates = {
        r.data.tags["variant"]: r.data.metrics["toy_arith/pass_at_1_mean"] for r in mlflow_runs(workdir, "aggregate")
    }
    assert aggregates == pytest.approx(means)
    (summary,) = mlflow_runs(workdir, "summary")
    assert summary.data.tags["verdicts"] == board["summary"]
    assert summary.data.tags["claim.0"].startswith("holds: ")
    assert {r.data.tags["method"] for r in runs} == {"base", "grpo[exact_match]@train", "grpo[majority_vote]@pool"}
    # the experiment's page reads at a glance: its description is the generated leaderboard with the verdicts, and
    # the UI link opens the aggregate runs best first by the headline metric
    import mlflow

    from harness.reporting.tracking import leaderboard_links

    exp = mlflow.get_experiment_by_name("smoke")
    note = exp.tags["mlflow.note.content"]
    assert note == (workdir / "results/runs/smoke/toy/leaderboard.md").read_text()
    for row in board["rows"]:
        assert f"| {row['variant']} | {row['model']} | {row['metrics']['pass@1']['mean']:.3f} ± " in note
    assert f"[{board['claims'][0]['verdict']}] {board['claims'][0]['statement']}" in note
    assert exp.tags["harness.headline"] == "toy_arith/pass_at_1_mean"
    monkeypatch.chdir(workdir)  # the store under results/ of the working directory
    (link,) = [line for line in leaderboard_links("http://ui") if line.startswith("smoke: ")]
    assert link.endswith("&orderByKey=metrics.%60toy_arith%2Fpass_at_1_mean%60&orderByAsc=false"), link


def test_no_change_rerun_does_nothing(workdir):
    out = run_snakemake(workdir, "-n").stdout
    assert "Nothing to be done" in out, out[-2000:]


def test_retracking_updates_the_same_run(workdir):
    tracked = workdir / "results/runs/smoke/toy/vote/seed1/tracked.json"
    before = json.loads(tracked.read_text())["run_id"]
    cmd = [sys.executable, "-m", "harness", "--papers-dir", str(workdir / "papers"), "track", "--paper", "smoke",
           "--variant", "vote", "--seed", "1"]  # fmt: skip
    subprocess.run(cmd, cwd=workdir, check=True, capture_output=True)
    assert json.loads(tracked.read_text())["run_id"] == before
    assert len(mlflow_runs(workdir, "run")) == 6


def test_changing_one_value_reruns_only_its_jobs(workdir):
    bundle = workdir / "papers/smoke/paper.yaml"
    bundle.write_text(
        BUNDLE.replace("rewards: [{name: exact_match}]}]", "rewards: [{name: exact_match}], args: {max_steps: 3}}]")
    )
    out = run_snakemake(workdir, "-n").stdout
    # gold's 2 seeds: train, evaluate, track; then the paper summary and `all`. Nothing of base or vote.
    assert jobs_in_dry_run(out) == {
        "train_stage": 2, "evaluate_run": 2, "track_run": 2, "summarize_paper": 1, "report_paper": 1, "report_index": 1,
        "all": 1,
    }  # fmt: skip
    assert "variant=vote" not in out and "variant=base" not in out  # no job of theirs
    run_snakemake(workdir)
    runs = mlflow_runs(workdir, "run")
    assert len(runs) == 6  # the changed runs replaced their old MLflow runs
    gold = [r for r in runs if r.data.tags["variant"] == "gold"]
    assert {r.data.params["variant.stages.0.args.max_steps"] for r in gold} == {"3"}
