"""SLURM integration on a real one-node cluster (.ci/slurm-local.sh): the CPU-world paper through
`snakemake --profile slurm`, a training job preempted mid-run that resumes from its checkpoint, and
a real error that fails the workflow visibly after the profile's bounded retries.

Needs root and apt-get (the script installs and starts munge, slurmdbd, slurmctld, slurmd);
elsewhere these tests are skipped with that reason.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.conftest import ROOT, clean_env, snakemake_cmd, write_bundle

pytestmark = pytest.mark.slow

BUNDLE = """
# A small paper for the SLURM tests: the base and one GRPO run long enough to be preempted mid-run.
paper: {title: slurm smoke test}
variants:
  base: {}
  gold:
    stages: [{kind: grpo, data: train, rewards: [{name: exact_match}]}]
scales:
  toy:
    model: toy-tiny
    eval: toy-smoke
    seeds: [0]
    trainers:
      grpo: {max_steps: 300, save_steps: 20, logging_steps: 10, per_device_train_batch_size: 16,
             num_generations: 4}
    resources:
      train: {time_min: 20}
      evaluate: {time_min: 15}
"""


def sh(*cmd: str, check: bool = True) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=120).stdout


def start_snakemake(workdir, log, config: tuple[str, ...] = ()) -> subprocess.Popen:
    cmd = snakemake_cmd(workdir, profile="slurm", config=config)
    return subprocess.Popen(cmd, cwd=ROOT, env=clean_env(), stdout=log, stderr=subprocess.STDOUT, text=True)


def release_held_jobs() -> None:
    """SLURM 22.05 holds requeued jobs for 120 s (reason BeginTime); let them start now."""
    for line in sh("squeue", "-h", "-t", "PD", "-o", "%i %r").splitlines():
        job, reason = line.split(maxsplit=1)
        if reason.strip() == "BeginTime":
            sh("scontrol", "update", f"JobId={job}", "StartTime=now", check=False)


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"snakemake exited ({proc.returncode}) while waiting for {what}")
        release_held_jobs()
        time.sleep(1)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def test_preempted_training_resumes_and_finishes(cluster, tmp_path):
    write_bundle(tmp_path / "papers", "slurmy", BUNDLE)
    stage = tmp_path / "results/runs/slurmy/toy/gold/seed0/stage0"
    with open(tmp_path / "snakemake.log", "w") as log:
        proc = start_snakemake(tmp_path, log)
        try:
            jobs_file = stage / "slurm" / "jobs.jsonl"
            wait_for(lambda: list(stage.glob("checkpoints/checkpoint-*")), 600, "the first checkpoint", proc)
            job_id = json.loads(jobs_file.read_text().splitlines()[0])["job_id"]
            # A job in the high-priority partition wanting the whole node preempts the training job.
            sh("sbatch", "-p", "high", "-c", "8", "-o", str(tmp_path / "preemptor.out"), "--wrap", "sleep 3")
            release_until_done(proc, timeout=900)
        finally:
            if proc.poll() is None:
                proc.kill()
    output = (tmp_path / "snakemake.log").read_text()
    assert proc.returncode == 0, output[-5000:]
    # submitit requeues the job itself on USR2 (REQUEUED); SLURM may record PREEMPTED first.
    history = sh("sacct", "-j", job_id, "-D", "-n", "-X", "-o", "State").split()
    assert {"PREEMPTED", "REQUEUED"} & set(history) and history[-1] == "COMPLETED", history

    summary = json.loads((stage / "train.json").read_text())
    assert summary["global_step"] == 300
    assert summary["resumed_from"] is not None and int(summary["resumed_from"].rsplit("-", 1)[1]) >= 20
    logged = [e["step"] for e in summary["log_history"] if "reward" in e]
    assert logged == list(range(10, 301, 10))  # nothing lost, nothing logged twice
    assert (stage / "model" / "model.safetensors").is_file()
    assert list((stage / "slurm").glob(f"{job_id}_0_log.out")), "SLURM logs belong next to the run's results"

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    exp = mlflow.get_experiment_by_name("slurmy")
    runs = mlflow.search_runs([exp.experiment_id], filter_string="tags.`harness.kind` = 'run'", output_format="list")
    assert sorted(r.data.tags["variant"] for r in runs) == ["base", "gold"]  # one run each, no duplicate
    gold = next(r for r in runs if r.data.tags["variant"] == "gold")
    assert job_id in gold.data.tags["slurm.job_ids"].split(",")


def release_until_done(proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.time() + timeout
    while proc.poll() is None and time.time() < deadline:
        release_held_jobs()
        time.sleep(2)
    if proc.poll() is None:
        pytest.fail(f"snakemake still running after {timeout} s")


def test_real_error_fails_after_bounded_retries(cluster, tmp_path):
    # passes validation (reward arguments are the reward's business) and fails inside the remote job
    broken = BUNDLE.replace("rewards: [{name: exact_match}]", "rewards: [{name: length, args: {max_chars: 0}}]")
    write_bundle(tmp_path / "papers", "broken", broken)
    with open(tmp_path / "snakemake.log", "w") as log:
        proc = start_snakemake(tmp_path, log)
        proc.wait(timeout=900)
    assert proc.returncode != 0
    stage = tmp_path / "results/runs/broken/toy/gold/seed0/stage0"
    submissions = (stage / "slurm" / "jobs.jsonl").read_text().splitlines()
    assert len(submissions) == 2  # the first try and the profile's one retry
    assert "length: max_chars must be positive, got 0" in (stage / "train.log").read_text()
    assert not (stage / "train.json").exists()
