"""harness.serve: the vLLM server of a GRPO stage in `vllm_mode: server` as its own SLURM job.

On the real local cluster (.ci/slurm-local.sh), a stand-in server (a tiny HTTP server answering /health and
recording who asked) is submitted as the server job; the orchestration finds its host and port, waits for
health, runs a stand-in training job through the real submit path (launch.submit_and_wait) that reads the
URL the way a GRPO stage does (harness.stages.grpo.generation_args, a GPU and vLLM faked) and reaches the
server; afterwards the server job is CANCELLED. A server that never becomes healthy, and one that dies,
fail with clear messages and are cancelled. The command-building pieces are tested without a cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness import serve
from harness.config.schema import ClusterConfig, Resources
from harness.device import VLLM_SERVER_ENV
from tests.conftest import ROOT

SLURM = ClusterConfig(launcher="slurm")
SMALL = Resources(cpus_per_task=1, mem_gb=0.5, time_min=5)

STANDIN = '''
"""A stand-in vLLM server: GET /health answers `status`; every request is appended to `record`."""
import http.server, json, sys

port, record, status = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(record, "a") as f:
            f.write(json.dumps({"path": self.path, "caller": self.headers.get("X-Caller", "")}) + "\\n")
        self.send_response(status if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


http.server.HTTPServer(("0.0.0.0", port), Handler).serve_forever()
'''


def standin(tmp_path: Path, status: int = 200) -> tuple[list[str], Path]:
    script, record = tmp_path / "standin_server.py", tmp_path / "requests.jsonl"
    script.write_text(STANDIN)
    return [sys.executable, str(script), serve.PORT, str(record), str(status)], record


def fake_training(argv: list[str]) -> int:
    """The stand-in training job (run on the compute node): the URL as a GRPO stage reads it, then GET /health."""
    from harness import device
    from harness.stages.grpo import generation_args

    device.cuda, device.vllm_installed = (lambda: True), (lambda: True)  # the one thing faked: a GPU node with vLLM
    gen = generation_args({"generation_engine": "auto", "vllm_mode": "server"})
    request = urllib.request.Request(gen["vllm_server_base_url"] + serve.HEALTH, headers={"X-Caller": "training"})
    with urllib.request.urlopen(request, timeout=10) as r:
        status = r.status
    Path(argv[0]).write_text(json.dumps({"generation": gen, "env": os.environ.get(VLLM_SERVER_ENV), "status": status}))
    return 0


def sacct_state(job_id: str) -> str:
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-j", job_id, "-o", "State"], capture_output=True, text=True)
    return out.stdout.split()[0] if out.stdout.split() else ""


def wait_state(job_id: str, wanted: str, timeout: float = 60) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline and (st := sacct_state(job_id)) != wanted:
        time.sleep(1)
    return st


def server_job(folder: Path) -> str:
    (address,) = folder.glob("vllm_server_*.json")
    return json.loads(address.read_text())["job_id"]


@pytest.mark.slow
def test_training_job_reaches_its_server_job_which_is_cancelled_afterwards(cluster, tmp_path):
    from harness.launch import submit_and_wait

    command, record = standin(tmp_path)
    stage = SimpleNamespace(args={"generation_engine": "auto", "vllm_mode": "server", "vllm_server_timeout": 120},
                            resources=SMALL)  # fmt: skip
    folder, out = tmp_path / "slurm", tmp_path / "training.json"
    with serve.for_stage(stage, "some/model", SMALL, SLURM, folder, "test.serve", command=command) as setup:
        job_id = server_job(folder)
        assert serve.state(job_id) == "RUNNING"
        submit_and_wait(fake_training, [str(out)], SMALL, SLURM, tmp_path / "train", "test.train", setup)
    seen = json.loads(out.read_text())
    address = json.loads((folder / f"vllm_server_{job_id}.json").read_text())
    url = f"http://{address['host']}:{address['port']}"
    assert seen["env"] == url and seen["status"] == 200
    assert seen["generation"] == {"use_vllm": True, "vllm_mode": "server", "vllm_server_base_url": url}
    callers = [json.loads(line)["caller"] for line in record.read_text().splitlines()]
    assert callers[0] == "" and callers[-1] == "training"  # the health wait first, the training job last
    assert wait_state(job_id, "CANCELLED") == "CANCELLED"
    assert setup == [f"export {VLLM_SERVER_ENV}={url}"]


@pytest.mark.slow
def test_a_server_that_never_becomes_healthy_fails_clearly_and_is_cancelled(cluster, tmp_path):
    command, record = standin(tmp_path, status=503)
    folder = tmp_path / "slurm"
    with pytest.raises(serve.ServerError, match=r"did not answer GET /health within 5 s of starting \(at http://"):
        with serve.running(command, SMALL, SLURM, folder, "test.unhealthy", timeout_s=5):
            pytest.fail("the block must not run without a healthy server")
    assert record.exists()  # it was asked, and said 503
    assert wait_state(server_job(folder), "CANCELLED") == "CANCELLED"


@pytest.mark.slow
def test_a_server_job_that_dies_fails_at_once_with_its_log(cluster, tmp_path):
    command = [sys.executable, "-c", "import sys; print('no such model', file=sys.stderr); sys.exit(3)"]
    with pytest.raises(serve.ServerError, match=r"(?s)ended \(FAILED\) before serving.*no such model"):
        with serve.running(command, SMALL, SLURM, tmp_path / "slurm", "test.dies", timeout_s=600):
            pass


@pytest.mark.slow
def test_a_head_job_stopped_by_sigterm_cancels_its_server(cluster, tmp_path):
    """Snakemake stops its jobs with SIGTERM: the server job must not outlive the head job waiting on training."""
    command, _ = standin(tmp_path)
    folder, ready = tmp_path / "slurm", tmp_path / "ready"
    code = (f"import time, pathlib; from harness import serve; from harness.config.schema import ClusterConfig, Resources\n"
            f"with serve.running({command!r}, Resources(mem_gb=0.5, time_min=5), ClusterConfig(launcher='slurm'), "
            f"pathlib.Path({str(folder)!r}), 'test.sigterm', timeout_s=120):\n"
            f"    pathlib.Path({str(ready)!r}).touch(); time.sleep(600)\n")  # fmt: skip
    head = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip
    deadline = time.time() + 120
    while not ready.exists() and head.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    assert ready.exists(), head.communicate(timeout=30)[0]
    job_id = server_job(folder)
    head.terminate()
    output = head.communicate(timeout=60)[0]
    assert head.returncode != 0 and f"cancelled vLLM server job {job_id}" in output, output
    assert wait_state(job_id, "CANCELLED") == "CANCELLED"


# ----------------------------------------------------------------------------- without a cluster


def test_only_a_server_mode_stage_on_slurm_gets_a_server():
    server = SimpleNamespace(args={"vllm_mode": "server", "generation_engine": "auto"}, resources=Resources())
    assert serve.wants_server(server)
    assert not serve.wants_server(SimpleNamespace(args={"vllm_mode": "colocate"}))
    assert not serve.wants_server(SimpleNamespace(args={"vllm_mode": "server", "generation_engine": "hf"}))
    assert not serve.wants_server(SimpleNamespace(args={"vllm_mode": "server", "vllm_server_host": "gen01"}))
    with serve.for_stage(server, "m", None, ClusterConfig(launcher="local"), Path("/nonexistent"), "x") as setup:
        assert setup == []  # local: nothing submitted (the user runs `trl vllm-serve` beside it)


def test_server_resources_and_command_follow_the_stage():
    stage = SimpleNamespace(args={"vllm_tensor_parallel_size": 2, "vllm_gpu_memory_utilization": 0.85,
                                  "vllm_max_model_length": 4096},
                            resources=Resources(nodes=2, gpus_per_node=8, cpus_per_task=12, mem_gb=500, time_min=600))  # fmt: skip
    res = serve.server_resources(stage, None)
    assert (res.nodes, res.gpus_per_node, res.cpus_per_task, res.time_min) == (1, 2, 12, 600)
    assert serve.server_resources(stage, SMALL) is SMALL
    cmd = serve.serve_command("Qwen/Qwen2.5-Math-1.5B", stage.args, 4)
    assert cmd[1:4] == ["-m", "trl.cli.main", "vllm-serve"]
    flags = dict(zip(cmd[4::2], cmd[5::2], strict=True))
    assert flags == {"--model": "Qwen/Qwen2.5-Math-1.5B", "--host": "0.0.0.0", "--port": serve.PORT,
                     "--tensor-parallel-size": "2", "--data-parallel-size": "2", "--gpu-memory-utilization": "0.85",
                     "--max-model-len": "4096"}  # fmt: skip
    with pytest.raises(ValueError, match="do not split"):
        serve.serve_command("m", stage.args, 3)


def test_the_serve_command_parses_with_trls_own_vllm_serve_parser():
    from trl.scripts.vllm_serve import make_parser

    cmd = serve.serve_command("m", {"vllm_tensor_parallel_size": 2, "vllm_max_model_length": 512}, 4)
    parsed, rest = make_parser().parse_args_and_config([c.replace(serve.PORT, "8123") for c in cmd[4:]],
                                                       return_remaining_strings=True)  # fmt: skip
    assert rest == []
    assert (parsed.model, parsed.port, parsed.tensor_parallel_size, parsed.data_parallel_size) == ("m", 8123, 2, 2)
    assert (parsed.gpu_memory_utilization, parsed.max_model_len) == (0.9, 512)


def test_the_wrapper_writes_its_address_then_becomes_the_server(tmp_path):
    address = tmp_path / "vllm_server_%j.json"
    env = os.environ | {"SLURM_JOB_ID": "77"}
    code = "import sys; print('port', sys.argv[1])"
    out = subprocess.run([sys.executable, "-m", "harness.serve", "--address", str(address), "--", sys.executable, "-c",
                          code, serve.PORT], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    info = json.loads((tmp_path / "vllm_server_77.json").read_text())
    assert info["job_id"] == "77" and info["port"] > 0
    assert out.stdout.strip().endswith(f"port {info['port']}")


def test_a_bundle_asks_for_server_mode_and_the_server_resources_stay_out_of_fingerprints(tmp_path):
    from harness.config.plain import fingerprint, plain_stage
    from tests.test_config import load, stage0

    def server_mode(b):
        stage0(b)["args"].update(vllm_mode="server", vllm_tensor_parallel_size=2)
        b["scales"]["toy"]["resources"] = {"vllm_server": {"gpus_per_node": 4, "mem_gb": 64, "time_min": 600}}

    rp = load(tmp_path, server_mode)
    stage = rp.variants["gold"].stages[0]
    assert serve.wants_server(stage) and not serve.wants_server(load(tmp_path / "b").variants["gold"].stages[0])
    res = serve.server_resources(stage, rp.server_resources)
    assert (res.gpus_per_node, res.mem_gb, res.time_min) == (4, 64, 600)
    assert serve.serve_command("m", stage.args, res.gpus_per_node)[-4:] == [
        "--data-parallel-size",
        "2",
        "--gpu-memory-utilization",
        "0.9",
    ]
    only_mode = load(
        tmp_path / "c", lambda b: stage0(b)["args"].update(vllm_mode="server", vllm_tensor_parallel_size=2)
    )
    assert fingerprint(plain_stage(stage)) == fingerprint(plain_stage(only_mode.variants["gold"].stages[0]))
    assert only_mode.server_resources is None
