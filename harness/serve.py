"""The vLLM server job of a GRPO stage with `vllm_mode: server` (TRL's server mode: generation on its own GPUs).

On SLURM, `harness train` of such a stage first submits the server as its own job (`trl vllm-serve --model
<the stage's policy> --tensor-parallel-size T --data-parallel-size D --port P ...`), with the scale's
`resources.vllm_server` (default: one node with T GPUs, the train job's CPUs, memory and time). The job
picks a free port on the node it lands on and writes host and port to a file beside its log (`python -m
harness.serve`, which then becomes the server); this side waits until GET /health answers 200 (the path of
vLLM's server and TRL's VLLMClient.check_server), hands the URL to the training job (its environment,
HARNESS_VLLM_SERVER_URL, which harness.stages.grpo passes on as GRPOConfig.vllm_server_base_url) and
cancels the server job when training ends: success, failure, Ctrl-C or SIGTERM (Snakemake stopping).

Departures from open-r1's N+1-node recipe: one server job per training job (never shared); only the
ports are chosen here, TRL's weight-sync group port (vllm_group_port) is left as configured.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from harness.config.schema import ClusterConfig, Resources
from harness.device import VLLM_SERVER_ENV
from harness.launch import slurm_parameters

HEALTH = "/health"
"""What vLLM's server answers 200 on once it serves (TRL's VLLMClient.check_server polls the same)."""
PORT = "{port}"
"""Stands in the server command for the port the job picks on its node."""
ENDED = ("FAILED", "COMPLETED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL",
         "DEADLINE")  # fmt: skip
"""SLURM states of a job that will not serve any more."""


class ServerError(RuntimeError):
    """The vLLM server job failed, ended, or did not become healthy in time."""


def wants_server(stage) -> bool:
    """Whether a stage generates with a vLLM server of its own: `vllm_mode: server` (a field of TRL's GRPOConfig,
    so only kinds passing it to TRL have it), an engine other than hf, and no server named in its args
    (`vllm_server_base_url` or `vllm_server_host`: one the user runs)."""
    a = stage.args
    named = a.get("vllm_server_base_url") or a.get("vllm_server_host")
    return a.get("vllm_mode") == "server" and a.get("generation_engine") != "hf" and not named


def server_resources(stage, configured: Resources | None) -> Resources:
    """The server job's resources: the scale's resources.vllm_server, else one node with
    vllm_tensor_parallel_size GPUs and the train job's CPUs, memory and time limit."""
    if configured is not None:
        return configured
    return replace(stage.resources, nodes=1, gpus_per_node=int(stage.args.get("vllm_tensor_parallel_size") or 1))


def serve_command(model: str, args: dict, gpus: int) -> list[str]:
    """`trl vllm-serve` for `model` on `gpus` GPUs: tensor parallel as the stage's vllm_tensor_parallel_size,
    data parallel over the rest; the port is PORT.

    >>> " ".join(serve_command("m", {"vllm_tensor_parallel_size": 2}, 4)[1:])
    '-m trl.cli.main vllm-serve --model m --host 0.0.0.0 --port {port} --tensor-parallel-size 2 --data-parallel-size 2 --gpu-memory-utilization 0.9'
    """
    tp = int(args.get("vllm_tensor_parallel_size") or 1)
    if gpus % tp:
        raise ValueError(f"vllm server: {gpus} GPUs do not split into tensor-parallel groups of {tp}")
    cmd = [sys.executable, "-m", "trl.cli.main", "vllm-serve", "--model", model, "--host", "0.0.0.0", "--port", PORT,
           "--tensor-parallel-size", str(tp), "--data-parallel-size", str(max(1, gpus // tp)),
           "--gpu-memory-utilization", str(args.get("vllm_gpu_memory_utilization") or 0.9)]  # fmt: skip
    if args.get("vllm_max_model_length"):
        cmd += ["--max-model-len", str(args["vllm_max_model_length"])]
    return cmd


def sbatch_options(resources: Resources, cluster: ClusterConfig, name: str) -> list[str]:
    """sbatch options for the server job: the site settings and resources harness.launch gives any job,
    one task (vLLM starts its own workers), no requeue (a restarted server would have another address).

    >>> sbatch_options(Resources(gpus_per_node=2, mem_gb=8), ClusterConfig(sbatch_extra={"exclusive": True}), "s")
    ['--job-name=s', '--nodes=1', '--ntasks-per-node=1', '--cpus-per-task=1', '--mem=8192M', '--time=30', '--gres=gpu:2', '--exclusive', '--no-requeue']
    """
    p = slurm_parameters(resources, cluster, name)
    opts = [f"--job-name={p['name']}", f"--nodes={p['nodes']}", "--ntasks-per-node=1",
            f"--cpus-per-task={p['cpus_per_task']}", f"--mem={math.ceil(p['mem_gb'] * 1024)}M",
            f"--time={p['timeout_min']}"]  # fmt: skip
    opts += [f"--gres={p['slurm_gres']}"] if "slurm_gres" in p else []
    opts += [f"--{k}={p[f'slurm_{k}']}" for k in ("partition", "account", "qos", "constraint") if f"slurm_{k}" in p]
    for k, v in p.get("slurm_additional_parameters", {}).items():
        opts += [f"--{k}"] if v is True else [] if v is False else [f"--{k}={v}"]
    return opts + ["--no-requeue"]


def submit(command: list[str], resources: Resources, cluster: ClusterConfig, folder: Path, name: str,
           port: int | None = None) -> tuple[str, Path]:  # fmt: skip
    """Submit the server job; returns its id and the file it will write its address to."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "vllm_server.sbatch"
    wrapper = [sys.executable, "-m", "harness.serve", "--address", str(folder / "vllm_server_%j.json")]
    wrapper += ["--port", str(port)] if port else []
    lines = ["#!/bin/bash", *(f"#SBATCH {o}" for o in sbatch_options(resources, cluster, name)),
             f"#SBATCH --output={folder}/%j_vllm_server.out", f"#SBATCH --error={folder}/%j_vllm_server.err",
             f"cd {shlex.quote(os.getcwd())}", "exec " + shlex.join(wrapper + ["--"] + command)]  # fmt: skip
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True, timeout=60)
    if out.returncode:
        raise ServerError(f"sbatch refused the vLLM server job ({script}): {out.stderr.strip()}")
    job_id = out.stdout.strip().split(";")[0]
    return job_id, folder / f"vllm_server_{job_id}.json"


def state(job_id: str) -> str:
    """The job's SLURM state (squeue while it is known there, else sacct: "CANCELLED by 0" reads CANCELLED);
    '' when neither knows it yet."""
    out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, timeout=60)
    if out.returncode == 0 and out.stdout.strip():
        return out.stdout.split()[0]
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-j", job_id, "-o", "State"], capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    return out.stdout.split()[0] if out.stdout.split() else ""


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + HEALTH, timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


def wait_healthy(job_id: str, address: Path, timeout_s: float, poll_s: float = 2.0) -> str:
    """The server's base URL once it answers GET /health with 200. The timeout counts from when the job runs
    (time in the queue is not the server's fault); a job that ends first fails at once, with its log's tail."""
    started, url = None, None
    while True:
        st = state(job_id).rstrip("+")
        if st in ENDED:
            raise ServerError(f"vLLM server job {job_id} ended ({st}) before serving:\n{_log_tail(address, job_id)}")
        if st == "RUNNING" and started is None:
            started = time.time()
        if url is None and address.exists():
            info = json.loads(address.read_text())
            url = f"http://{info['host']}:{info['port']}"
        if url is not None and healthy(url):
            return url
        if started is not None and time.time() - started > timeout_s:
            raise ServerError(f"vLLM server job {job_id} did not answer GET {HEALTH} within {timeout_s:.0f} s of "
                              f"starting ({'at ' + url if url else 'it wrote no address'}); "
                              f"log:\n{_log_tail(address, job_id)}")  # fmt: skip
        time.sleep(poll_s)


def _log_tail(address: Path, job_id: str, chars: int = 3000) -> str:
    logs = [address.parent / f"{job_id}_vllm_server.{ext}" for ext in ("out", "err")]
    return "\n".join(f"--- {f.name} ---\n{f.read_text()[-chars:]}" for f in logs if f.exists()) or "(no log yet)"


def cancel(job_id: str) -> None:
    subprocess.run(["scancel", job_id], capture_output=True, timeout=60)


@contextmanager
def running(command: list[str], resources: Resources, cluster: ClusterConfig, folder: Path, name: str,
            timeout_s: float = 900.0, port: int | None = None) -> Iterator[str]:  # fmt: skip
    """Submit the server job, wait until it is healthy, yield its URL; cancel it when the block ends, however
    it ends (SIGTERM, as Snakemake sends its jobs, is turned into an exception here so that happens too)."""
    job_id, address = submit(command, resources, cluster, folder, name, port)
    print(f"submitted vLLM server {name} as SLURM job {job_id}; waiting for GET {HEALTH}", flush=True)
    previous = signal.signal(signal.SIGTERM, _interrupt) if _main_thread() else None
    try:
        url = wait_healthy(job_id, address, timeout_s)
        print(f"vLLM server job {job_id} serves at {url}", flush=True)
        yield url
    finally:
        cancel(job_id)
        print(f"cancelled vLLM server job {job_id}", flush=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def for_stage(stage, model: str, configured: Resources | None, cluster: ClusterConfig, folder: Path, name: str,
              command: list[str] | None = None) -> Iterator[list[str]]:  # fmt: skip
    """The sbatch setup lines the training job of `stage` needs: none unless it wants its own vLLM server on
    SLURM; then the server runs for the duration of the block and the lines export its URL."""
    if cluster.launcher != "slurm" or not wants_server(stage):
        yield []
        return
    res = server_resources(stage, configured)
    if res.nodes != 1:
        raise ServerError(f"vllm server: {res.nodes} nodes asked for; one node per server job is supported")
    if res.time_min < stage.resources.time_min:
        print(f"warning: vLLM server time limit {res.time_min} min < training's {stage.resources.time_min} min",
              file=sys.stderr, flush=True)  # fmt: skip
    command = command or serve_command(model, stage.args, res.gpus_per_node)
    timeout = float(stage.args.get("vllm_server_timeout") or 900.0)
    with running(command, res, cluster, folder, name + ".vllm", timeout, stage.args.get("vllm_server_port")) as url:
        yield [f"export {VLLM_SERVER_ENV}={url}"]


# ----------------------------------------------------------------------------- inside the server job


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    """`python -m harness.serve --address FILE [--port P] -- COMMAND...`: pick a port (P or a free one), write
    {host, port} to FILE (%j: the SLURM job id), then become COMMAND with PORT replaced."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m harness.serve")
    p.add_argument("--address", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("command", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    command = a.command[1:] if a.command[:1] == ["--"] else a.command
    port = a.port or free_port()
    job_id = os.environ.get("SLURM_JOB_ID", "")
    file = Path(a.address.replace("%j", job_id))
    tmp = file.with_suffix(".partial")
    tmp.write_text(json.dumps({"host": socket.gethostname(), "port": port, "job_id": job_id}))
    tmp.rename(file)
    command = [c.replace(PORT, str(port)) for c in command]
    print(f"serving on {socket.gethostname()}:{port}: {' '.join(command)}", flush=True)
    os.execvp(command[0], command)


if __name__ == "__main__":
    sys.exit(main())
