"""The team setup: a real `mlflow server` on PostgreSQL (.ci/postgres-local.sh) with proxied artifacts.

A tiny paper runs through Snakemake into the embedded sqlite store (dir A); dir B starts from a copy of
A's trained and evaluated runs and Snakemake tracks them into the server (`MLFLOW_TRACKING_URI`), and
both stores must hold the same experiments, runs, params, metrics and tags. Run B carries credentials the way a team would (in the
tracking URI and in MLFLOW_TRACKING_USERNAME/PASSWORD, which the client sends as basic auth and this
server, having no auth, ignores); the credential must then appear in no MLflow record or artifact,
no file under dir B and no Snakemake output.

Needs root and apt-get (the script installs and starts PostgreSQL; elsewhere these tests are
skipped with that reason) and the psycopg2 driver (the test extra).
"""

from __future__ import annotations

import base64
import json
import math
import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import (
    ROOT,
    clean_env,
    free_port,
    live_members,
    snakemake_cmd,
    stop_group,
    wait_until_up,
    write_bundle,
)

pytestmark = pytest.mark.slow
SCRIPT = ROOT / ".ci" / "postgres-local.sh"

BUNDLE = """
# The team-server test's paper: the base and one GRPO method on the tiny model, 1 seed, 4 steps.
paper: {title: team server test}
variants:
  base: {description: untrained base}
  gold:
    stages: [{kind: grpo, data: train, rewards: [{name: exact_match}]}]
scales:
  toy:
    model: toy-tiny
    eval: toy-smoke
    seeds: [0]
    trainers:
      grpo: {max_steps: 4, save_steps: 2, logging_steps: 1, per_device_train_batch_size: 16, num_generations: 4}
claims:
  - {statement: the base scores at least nothing, lhs: base, op: ">=", rhs: "0"}
"""
PAPER = "team"

# What may differ between the two stores for the same run.
TIMING_METRICS = {"step_time", "train_runtime", "train_samples_per_second", "train_steps_per_second"}  # wall clock
# None: the only system tag is mlflow.runName (runs are made with MlflowClient.create_run, which adds no
# mlflow.user or mlflow.source.*), and the harness records the same tags whatever the store.
DIFFERENT_TAGS: set[str] = set()


@dataclass
class Postgres:
    port: int
    user: str  # also the database's name
    password: str = field(repr=False)  # kept out of pytest's reports


@dataclass
class Server:
    url: str
    artifacts: Path
    log: Path


def script(*args: str, stdin: str | None = None, env: dict[str, str] | None = None, timeout: float = 600):
    return subprocess.run(["bash", str(SCRIPT), *args], input=stdin, capture_output=True, text=True, env=env,
                          timeout=timeout)  # fmt: skip


def superuser_sql(sql: str, env: dict[str, str] | None = None) -> str:
    proc = script("psql", "-At", stdin=sql, env=env, timeout=60)
    assert proc.returncode == 0, f"psql failed: {proc.stderr}"
    return proc.stdout.strip()


@pytest.fixture(scope="session")
def postgres():
    was_up = script("status", timeout=60).returncode == 0
    t0 = time.monotonic()
    proc = script("start")
    if proc.returncode == 3:
        pytest.skip(f"local PostgreSQL unavailable: {proc.stdout.strip()} {proc.stderr.strip()}")
    assert proc.returncode == 0, f"PostgreSQL did not start:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    print(f"\nPostgreSQL up in {time.monotonic() - t0:.1f} s (was already up: {was_up})")
    pg = Postgres(int(superuser_sql("SHOW port")), f"harness_test_{secrets.token_hex(4)}", secrets.token_hex(16))
    # The password travels in the environment only: psql's \getenv reads it, nothing writes it down.
    superuser_sql(
        f"\\getenv pw HARNESS_TEST_DB_PASSWORD\nCREATE ROLE {pg.user} LOGIN PASSWORD :'pw';\n"
        f"CREATE DATABASE {pg.user} OWNER {pg.user};",
        env={**os.environ, "HARNESS_TEST_DB_PASSWORD": pg.password},
    )
    yield pg
    superuser_sql(f"DROP DATABASE IF EXISTS {pg.user} WITH (FORCE);\nDROP ROLE IF EXISTS {pg.user};")
    if not was_up:
        script("stop", timeout=120)


@pytest.fixture(scope="module")
def server(postgres, tmp_path_factory):
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        pytest.fail("MLflow's PostgreSQL store needs psycopg2: pip install -e '.[test]' (psycopg2-binary)")
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    # The database password goes in PGPASSWORD, which libpq reads: not on the command line (ps shows
    # that to every user), not in a file.
    store = f"postgresql://{postgres.user}@127.0.0.1:{postgres.port}/{postgres.user}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PG"))}
    env |= {"PGPASSWORD": postgres.password, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store, "--artifacts-destination",
           (root / "artifacts").as_uri(), "--serve-artifacts", "--host", "127.0.0.1", "--port", str(port),
           "--workers", "2"]  # fmt: skip
    log = root / "server.log"
    t0 = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url, proc, log, "mlflow server", timeout=180)  # a first start creates the schema
        print(f"\nmlflow server up in {time.monotonic() - t0:.1f} s")
        yield Server(url, root / "artifacts", log)
    finally:
        killed = stop_group(proc)
    assert not live_members(proc.pid), "mlflow server processes left behind"
    assert not killed, f"mlflow server processes {killed} ignored SIGTERM and had to be killed"


def snakemake(workdir: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    t0 = time.monotonic()
    proc = subprocess.run(snakemake_cmd(workdir), capture_output=True, text=True, env=env, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    print(f"\nsnakemake in {workdir.name}: {time.monotonic() - t0:.0f} s")
    return proc


# What dir B must make again from dir A's copy: everything the tracking wrote (tracking runs after training and
# evaluation, which never read the tracking URI: test_e2e's run holds credentials in their environment).
TRACKED = ("results/runs/*/toy/*/seed*/tracked.json", "results/runs/*/toy/*/seed*/track.log",
           "results/runs/*/toy/leaderboard.json", "results/runs/*/toy/summarize.log", "results/mlflow.db",
           "results/mlartifacts", "results/reports")  # fmt: skip


def copy_untracked(a: Path, b: Path) -> None:
    """Dir A's trained and evaluated runs (and Snakemake's records of them) into dir B, less what tracking wrote."""
    shutil.copytree(a, b, symlinks=True, dirs_exist_ok=True)  # copy2 keeps the times Snakemake compares
    for pattern in TRACKED:
        for p in b.glob(pattern):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    assert not list(b.glob("results/runs/*/toy/*/seed*/tracked.json"))


@pytest.fixture(scope="module")
def runs(server, postgres, tmp_path_factory):
    """Dir A (embedded store), dir B (the server, with credentials in the client's environment), B's output.

    B starts from a copy of A's trained and evaluated runs, so Snakemake in B runs only the tracking and what follows
    it, and both stores hold the tracking of the very same results."""
    base = {k: v for k, v in clean_env().items() if not k.startswith("MLFLOW_TRACKING_")}
    a, b = tmp_path_factory.mktemp("embedded"), tmp_path_factory.mktemp("served")
    write_bundle(a / "papers", PAPER, BUNDLE)
    snakemake(a, base)
    copy_untracked(a, b)  # the bundle too, as it was
    authed = server.url.replace("http://", f"http://{postgres.user}:{postgres.password}@")
    served = base | {"MLFLOW_TRACKING_URI": authed, "MLFLOW_TRACKING_USERNAME": postgres.user,
                     "MLFLOW_TRACKING_PASSWORD": postgres.password}  # fmt: skip
    out = snakemake(b, served)
    assert "rule track_run:" in out.stdout + out.stderr and "rule train_stage:" not in out.stdout + out.stderr
    return a, b, out


def client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def history(c, run_id: str, key: str) -> list[tuple[int, float | str]]:
    """(step, value) of every point of a metric; timestamps left out, NaN made comparable."""
    return sorted((m.step, "nan" if math.isnan(m.value) else m.value) for m in c.get_metric_history(run_id, key))


def snapshot(c) -> dict[str, dict[str, dict]]:
    """{experiment: {run_key: {params, tags, metrics: {key: history}}}}, run ids and times left out."""
    out: dict[str, dict[str, dict]] = {}
    for exp in c.search_experiments():
        runs = out.setdefault(exp.name, {})
        for r in c.search_runs([exp.experiment_id], max_results=1000):
            key = r.data.tags.get("harness.run_key", r.info.run_name)
            assert key not in runs, f"two runs with harness.run_key {key} in {exp.name}"
            keys = [k for k in r.data.metrics if k.rsplit("/", 1)[-1] not in TIMING_METRICS]
            runs[key] = {
                "params": r.data.params,
                "tags": {k: v for k, v in r.data.tags.items() if k not in DIFFERENT_TAGS},
                "metrics": {k: history(c, r.info.run_id, k) for k in keys},
            }
    return out


def sqlite_uri(workdir: Path) -> str:
    return f"sqlite:///{workdir / 'results' / 'mlflow.db'}"


def test_server_holds_what_the_embedded_store_holds(runs, server):
    a, b, _ = runs
    embedded, served = snapshot(client(sqlite_uri(a))), snapshot(client(server.url))
    assert sorted(embedded) == sorted(served) == ["Default", PAPER]
    assert sorted(embedded[PAPER]) == sorted(served[PAPER])
    assert len(served[PAPER]) == 2 + 2 + 1  # runs (2 variants x 1 seed), aggregates, summary
    for key, want in embedded[PAPER].items():
        got = served[PAPER][key]
        assert got["params"] == want["params"], key
        assert got["metrics"] == want["metrics"], key
        assert got["tags"] == want["tags"], key
    assert any("train/reward" in r["metrics"] for r in served[PAPER].values())


def test_artifacts_are_uploaded_to_the_server(runs, server, tmp_path):
    a, b, _ = runs
    c, local = client(server.url), client(sqlite_uri(a))
    embedded = {
        r.data.tags["harness.run_key"]: r.info.run_id
        for r in local.search_runs([local.get_experiment_by_name(PAPER).experiment_id])
    }
    exp = c.get_experiment_by_name(PAPER)
    assert exp.artifact_location.startswith("mlflow-artifacts:"), exp.artifact_location
    tracked = [r for r in c.search_runs([exp.experiment_id]) if r.data.tags["harness.kind"] == "run"]
    assert len(tracked) == 2
    for r in tracked:
        tags = r.data.tags
        run_dir = b / "results/runs" / PAPER / "toy" / tags["variant"] / f"seed{tags['seed']}"
        dst = Path(c.download_artifacts(r.info.run_id, "eval/metrics.json", str(tmp_path / r.info.run_id)))
        assert dst.read_bytes() == (run_dir / "eval/metrics.json").read_bytes()
        config = Path(c.download_artifacts(r.info.run_id, "config.json", str(tmp_path / r.info.run_id)))
        want = Path(local.download_artifacts(embedded[tags["harness.run_key"]], "config.json", str(tmp_path / "a")))
        assert json.loads(config.read_text()) == json.loads(want.read_text())
        assert json.loads((run_dir / "tracked.json").read_text())["tracking_uri"] == server.url
    # The server stored them in its own artifact store, not in the client's results/.
    assert list(server.artifacts.rglob("eval/metrics.json"))
    assert not (b / "results" / "mlartifacts").exists()


def forbidden(pg: Postgres) -> list[bytes]:
    """The password as text and inside a basic-auth header (base64 of user:password)."""
    return [pg.password.encode(), base64.b64encode(f"{pg.user}:{pg.password}".encode())]


def is_tracking_log(place: str) -> bool:
    return place.startswith("file results/runs/") and place.endswith(("/track.log", "/summarize.log"))


@pytest.fixture(scope="module")
def records(runs, server, tmp_path_factory) -> dict[str, bytes]:
    """Everything run B left behind, by place: MLflow records and artifacts, files under dir B, outputs."""
    _, b, out = runs
    c, tmp = client(server.url), tmp_path_factory.mktemp("downloads")
    found = {"snakemake output": (out.stdout + out.stderr).encode(), "mlflow server log": server.log.read_bytes()}
    for exp in c.search_experiments():
        found[f"experiment {exp.name}"] = json.dumps([exp.name, exp.artifact_location, exp.tags]).encode()
        for r in c.search_runs([exp.experiment_id], max_results=1000):
            record = [r.info.run_name, r.info.artifact_uri, r.data.params, r.data.tags, sorted(r.data.metrics)]
            found[f"run {r.info.run_name}"] = json.dumps(record).encode()
            dst = Path(c.download_artifacts(r.info.run_id, "", str(tmp / r.info.run_id)))
            found |= {
                f"artifact {r.info.run_name}/{p.relative_to(dst)}": p.read_bytes()
                for p in dst.rglob("*")
                if p.is_file()
            }
    files = {f"file {p.relative_to(b)}": p.read_bytes() for p in b.rglob("*") if p.is_file() and not p.is_symlink()}
    assert sum(k.startswith("artifact ") for k in found) >= 2 * 3  # config, eval/*, stage0/train.json per run
    assert any(k.startswith("file .snakemake/") for k in files) and any(k.endswith("/track.log") for k in files)
    return found | files


def test_credentials_are_recorded_nowhere(records, postgres):
    """No param, tag, artifact, file under dir B or output holds the password (in any form)."""
    leaks = [place for place, data in records.items() if any(s in data for s in forbidden(postgres))]
    assert not leaks, f"the credential leaked into: {leaks}"


def test_tracking_logs_hold_no_credentialed_uri(records, postgres):
    known = f"{postgres.user}:{postgres.password}@".encode()
    leaks = [place for place, data in records.items() if is_tracking_log(place) and known in data]
    assert not leaks, f"the tracking URI with its credentials is in: {leaks}"


# --------------------------------------------------------------------------- many trackings at once

CONCURRENT = 16


def fake_evaluations(workdir: Path) -> list[int]:
    """A bundle of one base variant with CONCURRENT seeds, each with an evaluation result on disk (pass@1 = seed/100)."""
    from harness.layout import eval_file
    from harness.plan import Plan

    seeds = list(range(CONCURRENT))
    write_bundle(workdir / "papers", "many", f"paper: {{title: many trackings}}\nvariants: {{base: {{}}}}\n"
                 f"scales: {{toy: {{model: toy-tiny, eval: toy-smoke, seeds: {seeds}}}}}\n")  # fmt: skip
    for run in Plan(["many"], "toy", workdir / "papers").runs("many"):
        f = workdir / eval_file(run)
        f.parent.mkdir(parents=True)
        metrics = {"toy_smoke": {"pass@1": run.seed / 100, "samples_per_question": 1, "questions": 4}}
        f.write_text(json.dumps({"model": "m", "metrics": metrics, "protocol": {"seed": run.seed}, "seconds": 1.0}))
    return seeds


def track_all_at_once(workdir: Path, seeds: list[int], env: dict[str, str]) -> None:
    procs = [subprocess.Popen([sys.executable, "-m", "harness", "--papers-dir", str(workdir / "papers"), "track",
                               "--paper", "many", "--variant", "base", "--seed", str(s)],
                              cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for s in seeds]  # fmt: skip
    logs = [p.communicate(timeout=900)[0] for p in procs]
    failed = [(s, log[-2000:]) for s, p, log in zip(seeds, procs, logs, strict=True) if p.returncode]
    assert failed == []


@pytest.mark.parametrize("store", ["embedded", "server"])
def test_trackings_started_all_at_once_lose_nothing(store, server, postgres, tmp_path):
    """CONCURRENT `harness track` processes at once, into the embedded sqlite store or the PostgreSQL-backed
    server: every run is there once, with its metric, and each run's tracked.json names its MLflow run."""
    base = {k: v for k, v in clean_env().items() if not k.startswith("MLFLOW_TRACKING_")}
    env, uri = base, sqlite_uri(tmp_path)
    if store == "server":
        env = base | {"MLFLOW_TRACKING_URI": server.url, "MLFLOW_TRACKING_USERNAME": postgres.user,
                      "MLFLOW_TRACKING_PASSWORD": postgres.password}  # fmt: skip
        uri = server.url.replace("http://", f"http://{postgres.user}:{postgres.password}@")
    seeds = fake_evaluations(tmp_path)
    track_all_at_once(tmp_path, seeds, env)
    c = client(uri)
    exp = c.get_experiment_by_name("many")
    runs = c.search_runs([exp.experiment_id], filter_string="tags.`harness.kind` = 'run'", max_results=1000)
    by_seed = {int(r.data.tags["seed"]): r for r in runs}
    assert len(runs) == len(by_seed) == CONCURRENT
    assert {s: r.data.metrics.get("toy_smoke/pass_at_1") for s, r in by_seed.items()} == {s: s / 100 for s in seeds}
    tracked = {json.loads(f.read_text())["run_id"] for f in tmp_path.glob("results/runs/many/toy/base/*/tracked.json")}
    assert tracked == {r.info.run_id for r in runs}


def test_a_failed_tracking_loses_no_result_and_tracking_again_fills_mlflow_in(tmp_path):
    from harness.layout import eval_file
    from harness.plan import Plan

    fake_evaluations(tmp_path)
    run = Plan(["many"], "toy", tmp_path / "papers").run("many", "base", 0)
    result = (tmp_path / eval_file(run)).read_bytes()
    base = {k: v for k, v in clean_env().items() if not k.startswith("MLFLOW_TRACKING_")}
    down = base | {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
                   "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}  # fmt: skip
    cmd = [sys.executable, "-m", "harness", "--papers-dir", str(tmp_path / "papers"), "track", "--paper", "many",
           "--variant", "base", "--seed", "0"]  # fmt: skip
    failed = subprocess.run(cmd, cwd=tmp_path, env=down, capture_output=True, text=True, timeout=300)
    assert failed.returncode != 0
    assert (tmp_path / eval_file(run)).read_bytes() == result  # the evaluation is untouched
    assert not list(tmp_path.glob("results/runs/many/toy/base/seed0/tracked.json"))  # not marked as tracked
    again = subprocess.run(cmd, cwd=tmp_path, env=base, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    (r,) = client(sqlite_uri(tmp_path)).search_runs(
        [client(sqlite_uri(tmp_path)).get_experiment_by_name("many").experiment_id]
    )
    assert r.data.metrics["toy_smoke/pass_at_1"] == 0.0 and r.data.tags["seed"] == "0"
