"""Preemption at any moment, on the real one-node SLURM cluster (.ci/slurm-local.sh).

A GRPO stage (`gold`) is preempted four times, each as SLURM signals it (USR2: submitit requeues the job
and exits wherever the main thread is): once at a random moment, once during generation, once during
the optimizer update and once while a checkpoint is being written. Its `twin`, the same stage with the
same seed, runs uninterrupted beside it. Both must end with the same per-step history, weights and
evaluation metrics; gold's history has every step exactly once, in MLflow too, in one run. (An
evaluation preempted mid-way is tests/test_slurm_resume.py.)

Where each preemption landed is read, not assumed: the job is stopped (SIGSTOP), py-spy reads its main
thread's stack from outside without running any of its code, and USR2 is sent while it is still stopped, so
the stack read is where the signal lands (at the next Python instruction once the job resumes).

Needs root and apt-get (the cluster fixture of tests/conftest.py); elsewhere skipped with that reason.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from safetensors.torch import load_file

from harness.launch import slurm_state
from harness.layout import CHECKPOINT_DONE
from tests.conftest import ROOT, clean_env, snakemake_cmd, write_bundle
from tests.test_slurm import release_held_jobs, release_until_done, sh, wait_for
from tests.test_slurm_resume import job_python, running_job, usr2_pending

pytestmark = pytest.mark.slow

STEPS = 120
BUNDLE = f"""
# One GRPO stage twice: gold is preempted at chosen moments, twin runs through.
paper: {{title: slurm preemption at any moment}}
variants:
  gold:
    stages: [{{kind: grpo, data: train, rewards: [{{name: exact_match}}]}}]
  twin:
    stages: [{{kind: grpo, data: train, rewards: [{{name: exact_match}}]}}]
scales:
  toy:
    model: toy-tiny
    eval: toy-smoke
    seeds: [0]
    trainers:
      grpo: {{max_steps: {STEPS}, save_steps: 10, logging_steps: 1, per_device_train_batch_size: 16,
             num_generations: 4}}
    resources:
      train: {{time_min: 20}}
      evaluate: {{time_min: 15}}
"""

PHASES = {  # the first phase with a function on the main thread's stack names where it was
    "checkpoint": {"_save_checkpoint", "save_model", "_save_optimizer_and_scheduler", "_save_rng_state",
                   "save_to_json", "rotate_checkpoints", "on_save"},
    "generation": {"_generate_and_score_completions", "_generate", "generate"},
    "update": {"compute_loss", "backward", "optimizer_step", "step", "clip_grad_norm_", "training_step"},
}  # fmt: skip
FRAME = re.compile(r"^\s+(\S+) \(")


def stack(pid: int) -> list[str]:
    """The main thread's functions, innermost first, read by py-spy from the (stopped) process's memory."""
    out = subprocess.run([str(Path(sys.executable).parent / "py-spy"), "dump", "--nonblocking", "--pid", str(pid)],
                         capture_output=True, text=True, timeout=60).stdout  # fmt: skip
    frames, inside = [], False
    for line in out.splitlines():
        if line.startswith("Thread "):
            inside = line.split()[1] in (str(pid), hex(pid))
        elif inside and (m := FRAME.match(line)):
            frames.append(m.group(1))
    return frames


def phase(stack: list[str]) -> str:
    names = {f.rsplit(".", 1)[-1] for f in stack}  # py-spy writes a method as Class.method
    return next((name for name, functions in PHASES.items() if functions & names), "other")


def trainer_process(job_id: str) -> psutil.Process | None:
    """The job's Python process (not the srun that started it)."""
    return next((p for p in job_python(job_id) if p.name().startswith("python")), None)


def running_trainer(jobs: Path) -> tuple[str, psutil.Process] | None:
    """The stage's running job and its Python process, once that is up. (Each is read once: read again, a job
    that has just left RUNNING gives None, as CI saw.)"""
    if (job_id := running_job(jobs)) and (job := trainer_process(job_id)):
        return job_id, job
    return None


def run_slice(job: psutil.Process, seconds: float) -> None:
    job.resume()
    time.sleep(seconds)
    job.suspend()


def unfinished_checkpoint(stage: Path) -> bool:
    return any(not (c / CHECKPOINT_DONE).exists() for c in (stage / "checkpoints").glob("checkpoint-*"))


def last_checkpoint(stage: Path) -> int:
    """The step of the newest complete checkpoint (0: none)."""
    done = [
        int(c.name.split("-")[1])
        for c in (stage / "checkpoints").glob("checkpoint-*")
        if (c / CHECKPOINT_DONE).exists()
    ]
    return max(done, default=0)


def stop_at(target: str, job: psutil.Process, stage: Path, rng: random.Random) -> str:
    """Run the job in short random slices until it is stopped at `target` (any moment for "random"; otherwise once
    it saved a checkpoint since it started, so that each attempt has one to resume from); return the phase its
    stack shows there."""
    if target == "random":
        run_slice(job, rng.uniform(0.5, 4.0))
        return phase(stack(job.pid))
    deadline, start, saved = time.time() + 300, last_checkpoint(stage), False
    while time.time() < deadline:
        if not saved:  # run on in longer slices until a checkpoint newer than the one resumed from is complete
            run_slice(job, 0.2)
            saved = last_checkpoint(stage) > start
            continue
        run_slice(job, rng.uniform(0.001, 0.01) if target == "checkpoint" else rng.uniform(0.002, 0.05))
        if target == "checkpoint" and not unfinished_checkpoint(stage):
            continue
        if (where := phase(stack(job.pid))) == target or target == "checkpoint":
            return where
    pytest.fail(f"the job was never seen in {target} in 300 s")


def preempt_at(target: str, stage: Path, rng: random.Random, proc) -> str:
    """Stop the running job at `target`, preempt it there, wait until it is requeued; return where it landed.
    (The newest job of the stage: the head submits afresh a job SLURM lost in its requeue, harness.launch.)"""
    jobs = stage / "slurm" / "jobs.jsonl"
    job_id, job = wait_for(lambda: running_trainer(jobs), 600, "the training job", proc)
    job.suspend()
    where = stop_at(target, job, stage, rng)
    sh("scancel", "--signal=USR2", job_id)  # as SLURM signals a preemption; submitit requeues the job itself
    wait_for(lambda: usr2_pending(job.pid), 120, "USR2 to reach the stopped job")
    job.resume()
    psutil.wait_procs([job], timeout=120)
    requeued(job_id)
    release_held_jobs()
    return where


def requeued(job_id: str, timeout: float = 120) -> None:
    """Until the job is queued again (or, lost in its requeue, has ended) with nothing of its last attempt left on
    the node. (Released any earlier, the next attempt can start while srun still tears the last one down: SLURM
    itself holds a requeued job for 120 s, which the test shortens only once the node is clear.)"""
    deadline = time.time() + timeout
    while slurm_state(job_id) in ("RUNNING", "COMPLETING") or job_python(job_id):
        assert time.time() < deadline, f"job {job_id} not requeued in {timeout} s (state {slurm_state(job_id)})"
        time.sleep(0.5)


def test_training_preempted_at_any_moment_ends_as_an_uninterrupted_run(cluster, tmp_path):
    write_bundle(tmp_path / "papers", "preempty", BUNDLE)
    runs = tmp_path / "results/runs/preempty/toy"
    stage, twin = runs / "gold/seed0/stage0", runs / "twin/seed0/stage0"
    seed = int(time.time())
    rng = random.Random(seed)
    landed = []
    with open(tmp_path / "snakemake.log", "w") as log:
        # no retry: a preemption the harness does not survive must fail here, not be hidden by a second try
        # reuse=false: the twin is the same job computed uninterrupted, not a copy of the preempted one
        cmd = snakemake_cmd(tmp_path, "--retries", "0", profile="slurm", config=("reuse=false",))
        proc = subprocess.Popen(cmd, cwd=ROOT, env=clean_env(), stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            for target in ("random", "generation", "update", "checkpoint"):
                landed.append((target, preempt_at(target, stage, rng, proc)))
            release_until_done(proc, timeout=900)
        finally:
            if proc.poll() is None:
                proc.kill()
            for jobs in tmp_path.glob("results/**/slurm/jobs.jsonl"):  # nothing left running (or stopped) behind
                for line in jobs.read_text().splitlines():
                    sh("scancel", json.loads(line)["job_id"], check=False)
    print(f"random seed {seed}; preempted at (target, where the stack was): {landed}")
    assert proc.returncode == 0, (tmp_path / "snakemake.log").read_text()[-5000:]
    assert [t for t, where in landed if t == where] == ["generation", "update", "checkpoint"], landed

    job_ids = [json.loads(line)["job_id"] for line in (stage / "slurm" / "jobs.jsonl").read_text().splitlines()]
    history = sh("sacct", "-j", ",".join(job_ids), "-D", "-n", "-X", "-P", "-o", "State").split()
    assert len({"PREEMPTED", "REQUEUED"} & set(history)) and history[-1] == "COMPLETED", history
    assert len(history) >= 5, history  # four interrupted attempts and the one that completed

    gold_run, twin_run = (json.loads((d / "train.json").read_text()) for d in (stage, twin))
    assert gold_run["resumed_from"] is not None and gold_run["global_step"] == twin_run["global_step"] == STEPS
    steps = [e["step"] for e in gold_run["log_history"] if "reward" in e]
    assert steps == list(range(1, STEPS + 1))  # nothing lost, nothing logged twice
    timing = re.compile(r"time|per_second|runtime")
    for mine, theirs in zip(gold_run["log_history"], twin_run["log_history"], strict=True):
        assert {k: v for k, v in mine.items() if not timing.search(k)} == \
               {k: v for k, v in theirs.items() if not timing.search(k)}  # fmt: skip
    weights = [load_file(str(d / "model" / "model.safetensors")) for d in (stage, twin)]
    for name in weights[0]:
        torch.testing.assert_close(weights[0][name], weights[1][name], rtol=0, atol=0, msg=name)
    metrics = [json.loads((d.parent / "eval" / "metrics.json").read_text())["metrics"] for d in (stage, twin)]
    assert metrics[0] == metrics[1]

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    exp = mlflow.get_experiment_by_name("preempty")
    runs_ = mlflow.search_runs([exp.experiment_id], filter_string="tags.`harness.kind` = 'run'", output_format="list")
    assert sorted(r.data.tags["variant"] for r in runs_) == ["gold", "twin"]  # one run each
    gold = next(r for r in runs_ if r.data.tags["variant"] == "gold")
    logged = [m.step for m in mlflow.MlflowClient().get_metric_history(gold.info.run_id, "train/reward")]
    assert sorted(logged) == list(range(1, STEPS + 1))
