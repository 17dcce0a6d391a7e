"""Resuming on a real one-node SLURM cluster (.ci/slurm-local.sh): a head node that dies and comes back
reattaches to its running training job instead of submitting a second one, and an evaluation preempted
mid-way resumes from the answers it had committed, ending with the metrics of an uninterrupted one.

Needs root and apt-get (the cluster fixture of tests/conftest.py); elsewhere skipped with that reason.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from harness.evaluation.resume import answered, cache_file
from harness.launch import slurm_state
from tests.conftest import ROOT, clean_env, snakemake_cmd, write_bundle
from tests.test_slurm import release_until_done, sh, start_snakemake, wait_for

pytestmark = pytest.mark.slow

TRAIN_BUNDLE = """
# One GRPO stage (its job is suspended while the head node is down, so it outlives the restart however fast).
paper: {title: slurm reattach test}
variants:
  gold:
    stages: [{kind: grpo, data: train, rewards: [{name: exact_match}]}]
scales:
  toy:
    model: toy-tiny
    eval: toy-smoke
    seeds: [0]
    trainers:
      grpo: {max_steps: 200, save_steps: 100, logging_steps: 10, per_device_train_batch_size: 16,
             num_generations: 4}
    resources:
      train: {time_min: 20}
      evaluate: {time_min: 15}
"""

EVAL_BUNDLE = """
# The base model evaluated twice: `base` is preempted mid-way, `twin` runs uninterrupted.
# toy-arith: 200 questions x 8 samples, answered 200 at a time (8 committed chunks).
paper: {title: slurm evaluation resume test}
variants:
  base: {}
  twin: {}
scales:
  toy:
    model: toy-tiny
    eval: toy-arith
    seeds: [0]
    resources:
      evaluate: {time_min: 15}
"""


def newest_job(jobs_file: Path) -> str | None:
    lines = jobs_file.read_text().splitlines() if jobs_file.is_file() else []
    return json.loads(lines[-1])["job_id"] if lines else None


def running_job(jobs_file: Path) -> str | None:
    job = newest_job(jobs_file)
    return job if job and slurm_state(job) == "RUNNING" else None


def read(path: Path) -> str:
    return path.read_text() if path.is_file() else ""


def kill_head(proc: subprocess.Popen) -> None:
    """What a head node's crash does: Snakemake and its children (`harness train`, waiting) die at once;
    the compute node's job is SLURM's (slurmstepd), not theirs, and goes on."""
    head = psutil.Process(proc.pid)
    family = [head] + head.children(recursive=True)
    for p in family:
        p.send_signal(signal.SIGKILL)
    psutil.wait_procs(family, timeout=30)
    proc.wait(timeout=30)


def test_restarted_head_node_reattaches_to_its_job(cluster, tmp_path):  # noqa: F811
    write_bundle(tmp_path / "papers", "reattachy", TRAIN_BUNDLE)
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 5))
    stage = tmp_path / "results/runs/reattachy/toy/gold/seed0/stage0"
    jobs_file = stage / "slurm" / "jobs.jsonl"
    with open(tmp_path / "first.log", "w") as log:
        first = start_snakemake(tmp_path, log)
        try:
            job_id = wait_for(lambda: running_job(jobs_file), 600, "the training job to run", first)
            assert any("harness" in " ".join(c.cmdline()) for c in psutil.Process(first.pid).children(recursive=True))
        finally:
            kill_head(first)
    assert slurm_state(job_id) == "RUNNING", "the compute-node job must outlive the head node"
    sh("scontrol", "suspend", job_id)  # still there when the head comes back, and a state submitit calls finished
    assert not (stage / "train.json").exists()

    # A killed Snakemake leaves its lock behind: unlock, then the very same command as before.
    unlock = subprocess.run(snakemake_cmd(tmp_path, "--unlock", profile="slurm"), cwd=ROOT, env=clean_env(),
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert unlock.returncode == 0, unlock.stderr[-3000:]
    with open(tmp_path / "second.log", "w") as log:
        second = start_snakemake(tmp_path, log)
        try:
            reattached = f"reattached to SLURM job {job_id} (SUSPENDED)"
            wait_for(lambda: reattached in read(stage / "train.log"), 300, "the head to reattach", second)
            time.sleep(30)  # > submitit's ~20 s before it fails a job it deems over: the head must wait on
            sh("scontrol", "resume", job_id)
            release_until_done(second, timeout=900)
        finally:
            if second.poll() is None:
                second.kill()
    output = (tmp_path / "second.log").read_text()
    assert second.returncode == 0 and "Error in rule" not in output, output[-5000:]  # no failed try either

    assert [json.loads(line)["job_id"] for line in jobs_file.read_text().splitlines()] == [job_id]
    name = "train.reattachy.gold.s0.0"
    rows = sh("sacct", "-n", "-X", "-P", "-S", since, "--name", name, "-o", "JobID,WorkDir").splitlines()
    in_sacct = [row.split("|")[0] for row in rows if row.split("|")[1] == str(tmp_path)]  # this test's jobs
    assert in_sacct == [job_id], rows  # one job for the stage, ever
    assert sh("sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State").split() == ["COMPLETED"]
    summary = json.loads((stage / "train.json").read_text())
    assert summary["global_step"] == 200 and summary["resumed_from"] is None  # one uninterrupted run of it

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    exp = mlflow.get_experiment_by_name("reattachy")
    runs = mlflow.search_runs([exp.experiment_id], filter_string="tags.`harness.kind` = 'run'", output_format="list")
    assert len(runs) == 1
    ids = runs[0].data.tags["slurm.job_ids"].split(",")
    assert job_id in ids and len(ids) == 2, ids  # the training job once, and the evaluation's


def test_only_a_live_job_of_the_same_configuration_is_reattached(cluster, tmp_path):  # noqa: F811
    from harness.launch import reattach

    folder, name = tmp_path / "slurm", "train.x.gold.s0.0"
    folder.mkdir()
    assert reattach(folder, name, tasks=1, key="fp1") is None  # nothing recorded: submit
    job_id = sh("sbatch", "--parsable", "-o", str(tmp_path / "sleep.out"), "--wrap", "sleep 300").strip()
    try:
        (folder / "jobs.jsonl").write_text(json.dumps({"job_id": job_id, "name": name, "key": "fp1"}) + "\n")
        wait_for(lambda: slurm_state(job_id) in ("PENDING", "RUNNING"), 60, "the job to be queued")
        assert reattach(folder, "eval.x.gold.s0", tasks=1) is None  # another job's record
        job = reattach(folder, name, tasks=1, key="fp1")
        assert job is not None and job.job_id == job_id and job.paths.folder == folder
        assert reattach(folder, name, tasks=1, key="fp2") is None  # a changed config: the stale job goes
        wait_for(lambda: slurm_state(job_id) == "CANCELLED", 60, "the stale job to be cancelled")
        assert reattach(folder, name, tasks=1, key="fp1") is None  # a finished job is never reattached
    finally:
        sh("scancel", job_id, check=False)


def job_python(job_id: str) -> list[psutil.Process]:
    """The Python process(es) submitit runs the job in, on this (the only) node: the tasks of its step 0.

    Only the step's tasks: the batch step's `srun` carries the same `submitit.core._submit` command line
    and shows up first, and stopping it instead would leave the Python running, to take USR2 at once."""
    out = sh("scontrol", "listpids", job_id, check=False).splitlines()[1:]  # PID JOBID STEPID LOCALID GLOBALID
    procs = []
    for line in out:
        try:
            pid, _, step = line.split()[:3]
            p = psutil.Process(int(pid))
            if step == "0" and "submitit.core._submit" in " ".join(p.cmdline()):
                procs.append(p)
        except (psutil.NoSuchProcess, ValueError):
            pass
    return procs


def pause_after_first_chunk(job_id: str, cache: Path, window_s: float = 0.03) -> tuple[list[psutil.Process], int]:
    """Stop the job's Python as soon as it starts, then let it run in short slices until it has committed a
    chunk of answers; return it stopped.

    A free-running toy evaluation opens its cache and generates every chunk within about a second, less than
    a poll of the cache takes on a loaded machine, so the job is held from its start: slices of 0.1 s while
    it imports and loads (no answers yet), then of `window_s` (a chunk takes longer) once its cache exists."""
    deadline = time.time() + 600
    while not (procs := job_python(job_id)):
        assert slurm_state(job_id) in ("PENDING", "RUNNING", "CONFIGURING"), f"job {job_id} ended before it was seen"
        assert time.time() < deadline, "the evaluation's Python did not start in 600 s"
        time.sleep(0.05)
    for p in procs:
        p.suspend()
    while (done := answered(cache, timeout=0.2)) == 0:
        assert time.time() < deadline, "no chunk committed in 600 s"
        assert all(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in procs), "the job's Python exited"
        for p in procs:
            p.resume()
        time.sleep(window_s if cache.is_file() else 0.1)
        for p in procs:
            p.suspend()
    return procs, done


def usr2_pending(pid: int) -> bool:
    """USR2 is pending for the (stopped) process: its bit in /proc/<pid>/status SigPnd or ShdPnd."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    masks = [int(line.split()[1], 16) for line in status.splitlines() if line.startswith(("SigPnd:", "ShdPnd:"))]
    return any(m & (1 << (signal.SIGUSR2 - 1)) for m in masks)


def test_preempted_evaluation_resumes_from_its_answers(cluster, tmp_path):  # noqa: F811
    write_bundle(tmp_path / "papers", "evalresume", EVAL_BUNDLE)
    runs = tmp_path / "results/runs/evalresume/toy"
    out = runs / "base/seed0/eval"
    with open(tmp_path / "snakemake.log", "w") as log:
        proc = start_snakemake(tmp_path, log, config=("reuse=false",))  # the twin is computed, not copied
        try:
            job_id = wait_for(lambda: running_job(out / "slurm" / "jobs.jsonl"), 600, "the evaluation job", proc)
            procs, before = pause_after_first_chunk(job_id, cache_file(out))
            # Preemption as SLURM signals it (USR2): submitit checkpoints and requeues the job itself. slurmd
            # delivers it asynchronously: the stopped job resumes only once it is pending there, or a loaded
            # machine lets the job finish every chunk before the signal arrives.
            sh("scancel", "--signal=USR2", job_id)
            wait_for(lambda: any(usr2_pending(p.pid) for p in procs), 120, "USR2 to reach the stopped job")
            for p in procs:
                p.resume()
            release_until_done(proc, timeout=900)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, (tmp_path / "snakemake.log").read_text()[-5000:]

    history = sh("sacct", "-j", job_id, "-D", "-n", "-X", "-P", "-o", "State").split()
    assert {"PREEMPTED", "REQUEUED"} & set(history) and history[-1] == "COMPLETED", history
    log = (out / "slurm" / f"{job_id}_0_log.out").read_text()
    counts = [line for line in log.splitlines() if line.startswith("generate_until: 1600 requests")]
    reused = int(counts[-1].split(", ")[1].split()[0])  # "generate_until: 1600 requests, K answered by ..."
    # The second attempt reads what the first committed: the rest when the preemption landed mid-way, everything
    # when the first attempt ran on to the end before SLURM killed it (it keeps computing until KillWait; a
    # resume from mid-way under a real SIGKILL is checked exactly in tests/test_resume.py).
    assert before <= reused <= 1600 and reused % 200 == 0, counts
    assert f"{1600 - reused} generated now" in counts[-1]
    assert not cache_file(out).exists()

    twin = runs / "twin/seed0/eval"
    assert (out / "samples.jsonl").read_text() == (twin / "samples.jsonl").read_text()
    metrics = [json.loads((d / "metrics.json").read_text())["metrics"] for d in (out, twin)]
    assert metrics[0] == metrics[1]
