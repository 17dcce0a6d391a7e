"""Runs one heavy job (a training stage, an evaluation) in-process or on SLURM. The only module importing submitit.

On SLURM, the Snakemake job on the head node submits `python -m harness ...` (the same command,
run locally on the compute node) through submitit and waits for it, so exactly one scheduler
submits each job. The caller hands over the entry point to run there (the CLI's `main`, pickled by
reference), so this module knows nothing of the commands. A preempted or timed-out job gets USR2, is requeued by submitit and runs the
same command again; the trainer then resumes from its last checkpoint. Multi-GPU jobs run one
process per GPU with torch distributed set up from SLURM's environment.
"""

from __future__ import annotations

import json
import pickle
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.config.schema import ClusterConfig, Resources
from harness.layout import JOBS_FILE


def slurm_parameters(resources: Resources, cluster: ClusterConfig, name: str) -> dict[str, Any]:
    """submitit AutoExecutor parameters for a job needing `resources` on the site `cluster`.

    >>> p = slurm_parameters(Resources(gpus_per_node=4, cpus_per_task=8), ClusterConfig(gpu_type="h100"), "x")
    >>> p["tasks_per_node"], p["slurm_gres"], "slurm_partition" in p
    (4, 'gpu:h100:4', False)
    """
    gpus = resources.gpus_per_node
    params: dict[str, Any] = {
        "name": name,
        "nodes": resources.nodes,
        "tasks_per_node": max(1, gpus),
        "cpus_per_task": resources.cpus_per_task,
        "mem_gb": resources.mem_gb,
        "timeout_min": resources.time_min,
        "slurm_signal_delay_s": cluster.signal_delay_s,
    }
    if gpus:
        params["slurm_gres"] = f"gpu:{cluster.gpu_type}:{gpus}" if cluster.gpu_type else f"gpu:{gpus}"
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(cluster, key):
            params[f"slurm_{key}"] = getattr(cluster, key)
    if cluster.sbatch_extra:
        params["slurm_additional_parameters"] = dict(cluster.sbatch_extra)
    return params


def torch_env() -> dict[str, str]:
    """What this SLURM task exports for torch distributed and accelerate: one process per GPU, on one or several
    nodes (`tasks_per_node` = GPUs per node, see slurm_parameters).

    RANK (SLURM_PROCID), LOCAL_RANK (SLURM_LOCALID: accelerate picks the GPU of that index, each task seeing all
    of its node's GPUs), WORLD_SIZE (SLURM_NTASKS), LOCAL_WORLD_SIZE (tasks per node), MASTER_ADDR (the job's
    first node) and MASTER_PORT (the site's MASTER_PORT, else one drawn from the job id: the same in every
    task, and again after a requeue), as submitit's TorchDistributedEnvironment computes them; values already
    in the environment are replaced (submitit's own export refuses them). OMP_NUM_THREADS is the task's CPUs
    unless set: torch would start a thread per core of the node in every process.
    """
    import os

    import submitit

    t = submitit.helpers.TorchDistributedEnvironment()
    env = {"RANK": t.rank, "LOCAL_RANK": t.local_rank, "WORLD_SIZE": t.world_size,
           "LOCAL_WORLD_SIZE": t.local_world_size, "MASTER_ADDR": t.master_addr, "MASTER_PORT": t.master_port}  # fmt: skip
    if "OMP_NUM_THREADS" not in os.environ and os.environ.get("SLURM_CPUS_PER_TASK"):
        env["OMP_NUM_THREADS"] = os.environ["SLURM_CPUS_PER_TASK"]
    return {k: str(v) for k, v in env.items()}


class HarnessJob:
    """The callable submitit pickles: runs `entry(argv)` (the `harness` command) on the compute node, requeueable."""

    def __init__(self, entry: Callable[[list[str]], int], argv: list[str], distributed: bool) -> None:
        self.entry, self.argv, self.distributed = entry, argv, distributed

    def __call__(self) -> int:
        if self.distributed:
            import os

            os.environ.update(torch_env())
        code = self.entry(self.argv)
        if code:
            raise RuntimeError(f"`harness {' '.join(self.argv)}` exited with status {code}")
        return code

    def checkpoint(self):
        """On preemption or time limit: requeue the same command (the trainer resumes by itself)."""
        import submitit

        return submitit.helpers.DelayedSubmission(self)


def submit_and_wait(entry: Callable[[list[str]], int], argv: list[str], resources: Resources, cluster: ClusterConfig,
                    folder: Path, name: str, setup: list[str] | None = None, key: str | None = None) -> None:  # fmt: skip
    """Submit `entry(argv)` (the `harness` command with these arguments) to SLURM, record the job id in `folder`,
    wait, show its log. `setup`: shell lines the job script runs first (harness.serve exports the server's URL).

    When the newest job recorded in `folder` for `name` is still queued or running (a head node that died
    and came back, a Snakemake restarted), no second job is submitted: this waits for that one instead.
    `key` (the job's fingerprint) is recorded with the id; a live job recorded with another key runs a
    stale configuration into the same folder and is cancelled before submitting afresh.
    """
    import submitit

    folder.mkdir(parents=True, exist_ok=True)
    params = slurm_parameters(resources, cluster, name) | ({"slurm_setup": setup} if setup else {})
    job = reattach(folder, name, params["nodes"] * params["tasks_per_node"], key)
    for attempt in range(cluster.max_requeues + 1):
        if job is None:
            executor = submitit.AutoExecutor(folder=folder, cluster="slurm", slurm_max_num_timeout=cluster.max_requeues)
            executor.update_parameters(**params)
            job = executor.submit(HarnessJob(entry, argv, distributed=resources.gpus_per_node * resources.nodes > 1))
            with open(folder / JOBS_FILE, "a") as f:
                f.write(json.dumps({"job_id": job.job_id, "name": name, "submitted": time.time(), "key": key}) + "\n")
            print(f"submitted {name} as SLURM job {job.job_id}; logs in {folder}", flush=True)
        wait(job)
        lost = lost_in_requeue(job)
        if not lost or attempt == cluster.max_requeues:
            break
        print(f"SLURM job {job.job_id} was requeued and then failed at once ({lost}): submitting {name} again "
              "(it resumes from its last complete checkpoint)", flush=True)  # fmt: skip
        job = None
    try:
        job.result()
    finally:
        print(f"--- SLURM job {job.job_id} ({job.state}) stdout ---\n{job.stdout() or ''}", flush=True)
        print(f"--- SLURM job {job.job_id} stderr ---\n{(job.stderr() or '')[-20000:]}", file=sys.stderr, flush=True)


def lost_in_requeue(job) -> str:
    """Why a job without a result was lost to its own requeue ('' when it was not, or has a result): its history
    shows it requeued (a preemption, a time limit) and its next attempt failed at once, as SLURM records when the
    requeued batch script's exit races the requeue (seen for a job preempted in its first seconds)."""
    import subprocess

    if all(job.task(i).paths.result_pickle.exists() for i in range(job.num_tasks)):
        return ""
    try:
        out = subprocess.run(["sacct", "-n", "-X", "-P", "-D", "-j", job.job_id, "-o", "State,Start,End"],
                             capture_output=True, text=True, timeout=60).stdout  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return requeue_race(out)


def requeue_race(history: str) -> str:
    """From `sacct -n -X -P -D -o State,Start,End` of one job: its last attempt if that followed a requeue and failed
    within the second it started, else ''.

    >>> requeue_race("REQUEUED|2026-12-02T08:37:42|2026-12-02T08:37:45\\nFAILED|2026-12-02T08:37:45|2026-12-02T08:37:45")
    'FAILED 2026-12-02T08:37:45..2026-12-02T08:37:45'
    >>> requeue_race("REQUEUED|2026-12-02T08:37:42|2026-12-02T08:37:45\\nFAILED|2026-12-02T08:37:50|2026-12-02T08:39:10")
    ''
    >>> requeue_race("FAILED|2026-12-02T08:37:45|2026-12-02T08:37:45")
    ''
    """
    rows = [line.split("|") for line in history.splitlines() if line.count("|") == 2]
    if len(rows) < 2 or rows[-2][0] not in ("REQUEUED", "PREEMPTED"):
        return ""
    state, start, end = rows[-1]
    return f"{state} {start}..{end}" if state.split()[0] in ("FAILED", "NODE_FAIL") and start == end else ""


LIVE = frozenset({"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUE_HOLD",
                  "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT"})  # fmt: skip
"""SLURM job states that may still end with the job's result: such a job is waited for, never submitted twice."""


def slurm_state(job_id: str) -> str | None:
    """The job's state as SLURM reports it now (`RUNNING`, `COMPLETED`, `CANCELLED`, ...); None when unknown.

    The controller's view first (squeue, which needs no accounting); for a job it has already forgotten
    (MinJobAge after the end), the accounting database's (sacct).
    """
    import subprocess

    for cmd in (["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"],
                ["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State"]):  # fmt: skip
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout.split()
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out:
            return out[-1].upper()  # sacct: `CANCELLED by 0` splits into words; the state is the last line's
    return None


def recorded_jobs(folder: Path, name: str) -> list[dict]:
    """The submissions recorded in `folder`'s JOBS_FILE for job `name`, oldest first."""
    path = folder / JOBS_FILE
    if not path.is_file():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [entry for entry in lines if entry.get("name") == name]


def reattach(folder: Path, name: str, tasks: int, key: str | None = None):
    """The newest recorded job for `name` if SLURM still has it queued or running (a submitit job to wait
    for, its results read from `folder` as for a job just submitted); None when it must be submitted.

    A live job recorded with another `key` than the one given is cancelled (its configuration is stale);
    a finished one is left alone: its results are whatever it wrote, and a failed one is submitted again.
    """
    import subprocess

    import submitit

    jobs = recorded_jobs(folder, name)
    if not jobs:
        return None
    newest = jobs[-1]
    job_id, state = str(newest["job_id"]), slurm_state(str(newest["job_id"]))
    if state not in LIVE:
        return None
    if key is not None and newest.get("key") not in (None, key):
        print(f"SLURM job {job_id} ({state}) runs another configuration of {name} (key {newest.get('key')}, "
              f"now {key}): cancelling it", flush=True)  # fmt: skip
        subprocess.run(["scancel", job_id], check=False, timeout=60)
        return None
    print(f"reattached to SLURM job {job_id} ({state}) of {name} instead of submitting it again; logs in {folder}",
          flush=True)  # fmt: skip
    return submitit.SlurmJob(folder=folder, job_id=job_id, tasks=tuple(range(tasks)))


def wait(job, poll_s: float = 1.0, held_poll_s: float = 10.0) -> None:
    """Until `job` has written its results or left SLURM for good. submitit alone stops waiting at a state
    it does not know as unfinished (SUSPENDED, CONFIGURING, REQUEUE_HOLD, ...) and then fails for want of
    a result; here such a job is waited for. A failed result is final only once SLURM no longer runs the job:
    a preempted attempt whose own `scontrol requeue` is killed by SLURM's requeue records an error, and SLURM
    then runs the job again (seen in CI), whose result replaces it."""
    tasks = [job.task(i) for i in range(job.num_tasks)]
    while True:
        if all(t.paths.result_pickle.exists() for t in tasks):
            if not any(failed(t.paths.result_pickle) for t in tasks) or slurm_state(job.job_id) not in LIVE:
                return
            time.sleep(poll_s)
        elif not job.done():
            time.sleep(poll_s)
        elif slurm_state(job.job_id) in LIVE:
            time.sleep(held_poll_s)
        else:
            return


def failed(result_pickle: Path) -> bool:
    """Whether a submitit result file records an error (or cannot be read yet)."""
    from submitit.core.utils import pickle_load

    try:
        return pickle_load(result_pickle)[0] != "success"
    except (OSError, EOFError, pickle.UnpicklingError):
        return True


def job_ids(run_dir: Path) -> list[str]:
    """SLURM job ids recorded under a run's directory, oldest first."""
    ids = []
    for f in sorted(run_dir.glob(f"**/slurm/{JOBS_FILE}")):
        ids += [json.loads(line)["job_id"] for line in f.read_text().splitlines() if line.strip()]
    return ids
