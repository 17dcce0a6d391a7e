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


class HarnessJob:
    """The callable submitit pickles: runs `entry(argv)` (the `harness` command) on the compute node, requeueable."""

    def __init__(self, entry: Callable[[list[str]], int], argv: list[str], distributed: bool) -> None:
        self.entry, self.argv, self.distributed = entry, argv, distributed

    def __call__(self) -> int:
        if self.distributed:
            import submitit

            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        code = self.entry(self.argv)
        if code:
            raise RuntimeError(f"`harness {' '.join(self.argv)}` exited with status {code}")
        return code

    def checkpoint(self):
        """On preemption or time limit: requeue the same command (the trainer resumes by itself)."""
        import submitit

        return submitit.helpers.DelayedSubmission(self)


def submit_and_wait(entry: Callable[[list[str]], int], argv: list[str], resources: Resources, cluster: ClusterConfig,
                    folder: Path, name: str, setup: list[str] | None = None) -> None:  # fmt: skip
    """Submit `entry(argv)` (the `harness` command with these arguments) to SLURM, record the job id in `folder`,
    wait, show its log. `setup`: shell lines the job script runs first (harness.serve exports the server's URL)."""
    import submitit

    folder.mkdir(parents=True, exist_ok=True)
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm", slurm_max_num_timeout=cluster.max_requeues)
    executor.update_parameters(**slurm_parameters(resources, cluster, name) | ({"slurm_setup": setup} if setup else {}))
    job = executor.submit(HarnessJob(entry, argv, distributed=resources.gpus_per_node * resources.nodes > 1))
    with open(folder / JOBS_FILE, "a") as f:
        f.write(json.dumps({"job_id": job.job_id, "name": name, "submitted": time.time()}) + "\n")
    print(f"submitted {name} as SLURM job {job.job_id}; logs in {folder}", flush=True)
    try:
        job.result()
    finally:
        print(f"--- SLURM job {job.job_id} ({job.state}) stdout ---\n{job.stdout() or ''}", flush=True)
        print(f"--- SLURM job {job.job_id} stderr ---\n{(job.stderr() or '')[-20000:]}", file=sys.stderr, flush=True)


def job_ids(run_dir: Path) -> list[str]:
    """SLURM job ids recorded under a run's directory, oldest first."""
    ids = []
    for f in sorted(run_dir.glob(f"**/slurm/{JOBS_FILE}")):
        ids += [json.loads(line)["job_id"] for line in f.read_text().splitlines() if line.strip()]
    return ids
