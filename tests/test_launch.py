"""What a job asks of SLURM, and the batch layout derived from the GPUs granted (pure functions)."""

from __future__ import annotations

import pytest

from harness.cli import _without
from harness.config.schema import ClusterConfig, Resources
from harness.launch import job_ids, slurm_parameters
from harness.stages.plumbing import batch_layout


def test_slurm_parameters_carry_resources_and_site_settings():
    res = Resources(nodes=2, gpus_per_node=8, cpus_per_task=12, mem_gb=900, time_min=1440)
    site = ClusterConfig(launcher="slurm", partition="gpu", account="lab", qos="high", constraint="h100",
                         gpu_type="h100", sbatch_extra={"exclusive": True}, signal_delay_s=120)  # fmt: skip
    p = slurm_parameters(res, site, "train.x")
    assert p == {
        "name": "train.x", "nodes": 2, "tasks_per_node": 8, "cpus_per_task": 12, "mem_gb": 900, "timeout_min": 1440,
        "slurm_signal_delay_s": 120, "slurm_gres": "gpu:h100:8", "slurm_partition": "gpu", "slurm_account": "lab",
        "slurm_qos": "high", "slurm_constraint": "h100", "slurm_additional_parameters": {"exclusive": True},
    }  # fmt: skip


def test_cpu_job_asks_for_no_gpu_and_leaves_defaults_to_the_site():
    p = slurm_parameters(Resources(), ClusterConfig(launcher="slurm"), "eval.x")
    assert p["tasks_per_node"] == 1 and "slurm_gres" not in p
    assert not any(k in p for k in ("slurm_partition", "slurm_account", "slurm_qos", "slurm_additional_parameters"))


@pytest.mark.parametrize(
    ("world", "cap", "per_device", "accumulation"),
    [
        (1, None, 512, 1),  # no cap: one step
        (8, 16, 16, 4),  # 512 / 8 = 64 per GPU -> 16 x 4
        (8, 64, 64, 1),
        (16, 16, 16, 2),  # two nodes of 8: 32 per GPU -> 16 x 2
        (4, 48, 32, 4),  # 128 per GPU; 48 does not divide it, the largest divisor <= 48 is 32
        (2, 1, 1, 256),
    ],
)
def test_batch_layout_keeps_the_global_batch(world, cap, per_device, accumulation):
    layout = batch_layout({"global_batch_size": 512, "max_per_device_batch_size": cap}, world)
    assert layout == {"per_device_train_batch_size": per_device, "gradient_accumulation_steps": accumulation}
    assert world * per_device * accumulation == 512


def test_batch_layout_without_global_batch_keeps_the_config():
    args = {"global_batch_size": None, "per_device_train_batch_size": 8, "gradient_accumulation_steps": 3}
    assert batch_layout(args, 4) == {"per_device_train_batch_size": 8, "gradient_accumulation_steps": 3}


def test_batch_layout_refuses_an_uneven_split():
    with pytest.raises(ValueError, match="does not split over 3 processes"):
        batch_layout({"global_batch_size": 512}, 3)


def test_remote_command_drops_the_head_node_options():
    argv = ["--papers-dir", "p", "--cluster", "slurm", "--threads", "1", "train", "--seed", "0"]
    assert _without(argv, "--cluster", "--threads") == ["--papers-dir", "p", "train", "--seed", "0"]
    assert _without(["--cluster=slurm", "evaluate"], "--cluster") == ["evaluate"]


def test_job_ids_are_collected_from_every_stage(tmp_path):
    for sub, ids in (("stage0/slurm", ["11", "12"]), ("eval/slurm", ["13"])):
        (tmp_path / sub).mkdir(parents=True)
        (tmp_path / sub / "jobs.jsonl").write_text("".join(f'{{"job_id": "{i}"}}\n' for i in ids))
    assert sorted(job_ids(tmp_path)) == ["11", "12", "13"]


def _fake_job(folder):
    """What harness.launch.wait reads of a submitit job: its tasks' result files, done() and the job id."""
    from types import SimpleNamespace

    task = SimpleNamespace(paths=SimpleNamespace(result_pickle=folder / "1_0_result.pkl"))
    return SimpleNamespace(job_id="1", num_tasks=1, task=lambda i: task, done=lambda: True), task.paths.result_pickle


def test_a_failed_attempt_is_not_final_while_slurm_runs_the_job_again(tmp_path, monkeypatch):
    """As CI saw: a preempted attempt's own `scontrol requeue` is killed by SLURM's requeue, submitit records the
    error, and SLURM runs the job again; the head waits for that attempt's result instead of failing."""
    from submitit.core.utils import cloudpickle_dump

    from harness import launch

    job, result = _fake_job(tmp_path)
    cloudpickle_dump(("error", "CalledProcessError: scontrol requeue died with SIGTERM"), result)
    states = iter(["REQUEUED", "PENDING", "RUNNING", "RUNNING"])

    def state(job_id):
        now = next(states, "COMPLETED")
        if now == "RUNNING":  # the next attempt ends
            cloudpickle_dump(("success", 0), result)
        return now

    monkeypatch.setattr(launch, "slurm_state", state)
    launch.wait(job, poll_s=0, held_poll_s=0)
    assert not launch.failed(result)
    assert next(states) == "RUNNING"  # it stopped waiting once the success was there, not at the end of the list


def test_a_failed_result_of_a_job_slurm_has_ended_is_final(tmp_path, monkeypatch):
    from submitit.core.utils import cloudpickle_dump

    from harness import launch

    job, result = _fake_job(tmp_path)
    cloudpickle_dump(("error", "RuntimeError: harness train exited with status 1"), result)
    asked = []
    monkeypatch.setattr(launch, "slurm_state", lambda job_id: asked.append(job_id) or "FAILED")
    launch.wait(job, poll_s=0, held_poll_s=0)
    assert launch.failed(result) and asked == ["1"]


TORCH_KEYS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "OMP_NUM_THREADS")


def test_each_task_of_a_two_node_job_exports_its_torch_distributed_environment(monkeypatch):
    """2 nodes x 4 GPUs: 8 tasks, as SLURM describes them to each task (srun under sbatch)."""
    import os

    from harness.launch import HarnessJob, torch_env

    for key in TORCH_KEYS:  # the job writes them into os.environ: set then deleted so that the test restores them
        monkeypatch.setenv(key, "")  # (a bare delenv of an absent key records nothing to restore, and a leaked
        monkeypatch.delenv(key)  # WORLD_SIZE makes every later trainer wait for 8 processes)
    slurm = {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "4242", "SLURM_NTASKS": "8", "SLURM_JOB_NUM_NODES": "2",
             "SLURM_JOB_NODELIST": "gpu[017-018]", "SLURM_CPUS_PER_TASK": "12"}  # fmt: skip
    for key, value in slurm.items():
        monkeypatch.setenv(key, value)
    seen = []

    def entry(argv):
        seen.append({k: os.environ[k] for k in TORCH_KEYS})
        return 0

    for rank in range(8):
        node, local = divmod(rank, 4)
        monkeypatch.setenv("SLURM_PROCID", str(rank))
        monkeypatch.setenv("SLURM_LOCALID", str(local))
        monkeypatch.setenv("SLURM_NODEID", str(node))
        monkeypatch.setenv("RANK", "0")  # left over from an outer launcher: replaced, not refused
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        assert HarnessJob(entry, ["train"], distributed=True)() == 0

    assert [(e["RANK"], e["LOCAL_RANK"]) for e in seen] == [(str(r), str(r % 4)) for r in range(8)]
    port = seen[0]["MASTER_PORT"]
    assert 20000 <= int(port) <= 60000  # drawn from the job id: one port for every task
    common = {"WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "4", "MASTER_ADDR": "gpu017", "MASTER_PORT": port,
              "OMP_NUM_THREADS": "12"}  # fmt: skip
    assert all({k: e[k] for k in common} == common for e in seen)

    monkeypatch.setenv("MASTER_PORT", "29555")  # a site that fixes the port keeps it
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    env = torch_env()
    assert env["MASTER_PORT"] == "29555" and "OMP_NUM_THREADS" not in env
