"""harness.reuse: content keys of jobs, and a finished job's folder taken by an identical one.

The whole path through Snakemake (a second bundle whose jobs are all reused, one that is not) is in
tests/test_multistage_e2e.py."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from harness import reuse
from harness.layout import RUNS, Run, stage_dir
from harness.plan import Plan
from tests.test_plan import BUNDLE, write  # a bundle of base, gold, vote (sft then grpo) and vote_weak


def world_files(plan: Plan) -> list[str]:
    """The files outside results/runs/ that the plan's jobs read (the toy base, the splits)."""
    wanted = set()
    for paper in plan.papers:
        for run in plan.runs(paper):
            for i in range(len(plan.papers[paper].variants[run.variant].stages)):
                wanted |= set(plan.stage_inputs(run, i))
            wanted |= set(plan.eval_inputs(run))
    return sorted(p for p in wanted if not p.startswith(RUNS + "/"))


@pytest.fixture
def plan(tmp_path, monkeypatch) -> Plan:
    """Two papers, `p` and `q`, with the same variants; `q`'s vote starts from another SFT stage. Run from a temp
    working directory holding a stand-in world (the key reads its files' bytes, not their meaning)."""
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "papers", "p", BUNDLE)
    other = json.loads(json.dumps(BUNDLE))
    other["paper"]["title"] = "another paper"
    other["variants"]["vote"]["stages"][0]["args"] = {"learning_rate": 1e-4}
    write(tmp_path / "papers", "q", other)
    plan = Plan(None, "toy", papers_dir=tmp_path / "papers")
    for f in world_files(plan):
        Path(f).parent.mkdir(parents=True, exist_ok=True)
        Path(f).write_text(f"stand-in for {f}\n")
    return plan


def test_the_same_job_in_two_papers_has_one_key(plan):
    p, q = Run("p", "toy", "gold", 0), Run("q", "toy", "gold", 0)
    assert plan.stage_fingerprint(p, 0) == plan.stage_fingerprint(q, 0)  # the first stage reads no run folder
    assert reuse.stage_key(plan, p, 0) == reuse.stage_key(plan, q, 0) is not None
    assert reuse.eval_key(plan, p) == reuse.eval_key(plan, q) is not None  # both evaluate the same trained model
    assert reuse.eval_key(plan, Run("p", "toy", "base", 0)) == reuse.eval_key(plan, Run("q", "toy", "base", 0))
    assert reuse.stage_key(plan, Run("p", "toy", "gold", 1), 0) != reuse.stage_key(plan, p, 0)  # another seed
    assert reuse.eval_key(plan, Run("p", "toy", "base", 0)) != reuse.eval_key(plan, p)  # another model


def test_a_later_stage_is_keyed_by_what_the_earlier_ones_were(plan):
    p, q = Run("p", "toy", "vote", 0), Run("q", "toy", "vote", 0)
    assert plan.stage_payload(p, 1)["stage"] == plan.stage_payload(q, 1)["stage"]  # the same grpo stage...
    assert plan.stage_payload(p, 1)["base"] == f"{stage_dir(p, 0)}/model"  # ...read from each run's own folder
    assert reuse.stage_key(plan, p, 0) != reuse.stage_key(plan, q, 0)  # the SFT stages differ (learning rate)
    assert reuse.stage_key(plan, p, 1) != reuse.stage_key(plan, q, 1)  # so the stage after them differs
    assert reuse.eval_key(plan, p) != reuse.eval_key(plan, q)
    # and with the same earlier stage, the same later one: p's vote against itself in another paper dir is tested
    # through Snakemake (tests/test_multistage_e2e.py)


def test_a_rebuilt_world_changes_every_key_that_reads_it(plan):
    gold, base = Run("p", "toy", "gold", 0), Run("p", "toy", "base", 0)
    before = reuse.stage_key(plan, gold, 0), reuse.eval_key(plan, base)
    pretrain = f"{plan.base_model('p', 'gold')}/pretrain.json"
    Path(pretrain).write_text('{"rebuilt": true}\n')
    after = Plan(None, "toy", papers_dir=Path("papers"))  # a new job: a new process, a new plan
    assert reuse.stage_key(after, gold, 0) != before[0]
    assert reuse.eval_key(after, base) != before[1]


def test_a_job_whose_world_is_missing_gets_no_key(plan):
    Path(f"{plan.base_model('p', 'gold')}/pretrain.json").unlink()
    fresh = Plan(None, "toy", papers_dir=Path("papers"))
    assert reuse.stage_key(fresh, Run("p", "toy", "gold", 0), 0) is None
    assert reuse.stage_key(fresh, Run("p", "toy", "vote", 0), 1) is None  # nor anything after it


def finished(folder: Path, summary: str = "train.json") -> Path:
    """A finished stage folder: its model, resume state, a job record, a log, and the summary written last."""
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "weights.bin").write_bytes(b"\x00\x01")
    (folder / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    (folder / "checkpoints" / "checkpoint-2" / "state.pt").write_bytes(b"x")
    (folder / "slurm").mkdir()
    (folder / "slurm" / "jobs.jsonl").write_text("{}\n")
    (folder / "train.log").write_text("trained\n")
    (folder / "pairs.jsonl").write_text('{"chosen": "1"}\n')
    (folder / summary).write_text(json.dumps({"kind": "dpo", "init_model": "results/runs/a/toy/v/seed0/stage0/model",
                                              "log_history": [{"loss": 0.5}]}))  # fmt: skip
    return folder


def test_lookup_trusts_only_the_file_it_recorded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = finished(tmp_path / "results/runs/a/toy/v/seed0/stage1")
    reuse.record("k1", src, "train.json")
    assert reuse.lookup("k1", tmp_path / "elsewhere") == src
    assert reuse.lookup("k1", src) is None  # never a job's own folder
    assert reuse.lookup("k2", tmp_path / "elsewhere") is None and reuse.lookup(None, tmp_path) is None
    (src / "train.json").write_text(json.dumps({"kind": "dpo", "re-made": "by another config"}))
    assert reuse.lookup("k1", tmp_path / "elsewhere") is None
    reuse.record("k1", src, "train.json")
    os.rename(src, tmp_path / "moved")
    assert reuse.lookup("k1", tmp_path / "elsewhere") is None  # moved away (results/stale/): forgotten


def test_a_taken_folder_links_the_outputs_and_says_where_they_came_from(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    src = finished(tmp_path / "a")
    dst = tmp_path / "b"
    reuse._take(src, dst, "train.json", {"init_model": "results/runs/b/toy/v/seed0/stage0/model", "absent": 1})
    assert os.stat(dst / "model" / "weights.bin").st_ino == os.stat(src / "model" / "weights.bin").st_ino
    assert (dst / "pairs.jsonl").read_text() == (src / "pairs.jsonl").read_text()
    assert not any((dst / name).exists() for name in ("checkpoints", "slurm", "train.log"))
    summary = json.loads((dst / "train.json").read_text())
    assert summary["reused_from"] == str(src)
    assert summary["init_model"] == "results/runs/b/toy/v/seed0/stage0/model"  # this run's, not the source's
    assert "absent" not in summary and summary["log_history"] == [{"loss": 0.5}]
    assert f"reused {src}" in capsys.readouterr().out


def test_a_job_computing_afresh_never_writes_through_a_link_into_another_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = finished(tmp_path / "a")
    reuse._take(src, tmp_path / "b", "train.json", {})
    assert reuse.detach(src) == 2  # the model's weights and pairs.jsonl were shared; the rest is src's own
    with open(src / "model" / "weights.bin", "wb") as f:  # the source re-made in place, as a trainer may save
        f.write(b"new")
    assert (tmp_path / "b" / "model" / "weights.bin").read_bytes() == b"\x00\x01"
    assert (src / "checkpoints" / "checkpoint-2" / "state.pt").exists() and reuse.detach(tmp_path / "b") == 0


def test_an_identical_job_started_beside_a_running_one_waits_for_it_then_takes_it(tmp_path, monkeypatch, capsys):
    """Two jobs with one key that Snakemake starts together: the second waits on the key's lock while the first
    computes, then finds the first's folder (instead of computing the same job a second time)."""
    monkeypatch.chdir(tmp_path)
    src, found = tmp_path / "results/runs/a/toy/v/seed0/stage0", []

    def second() -> None:
        with reuse.claim("k", "stage 0 of b"):
            found.append(reuse.lookup("k", tmp_path / "b"))

    with reuse.claim("k", "stage 0 of a"):
        assert reuse.lookup("k", tmp_path / "b") is None  # nothing finished yet: this job computes
        beside = threading.Thread(target=second)
        beside.start()
        beside.join(timeout=1.0)
        assert beside.is_alive() and found == []  # held at the lock, not looking up
        reuse.record("k", finished(src), "train.json")
    beside.join(timeout=60)
    assert found == [src]
    assert "waiting for an identical job to finish stage 0 of b (results/reuse/k.lock)" in capsys.readouterr().out
    assert Path("results/reuse/k.lock").exists()


def test_a_job_that_fails_lets_the_one_waiting_on_it_compute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RuntimeError, match="out of memory"), reuse.claim("k", "stage 0 of a"):
        raise RuntimeError("out of memory")  # nothing recorded; the lock goes with the job
    with reuse.claim("k", "stage 0 of b"):  # taken at once (a lock still held would block here)
        assert reuse.lookup("k", tmp_path / "b") is None
    with reuse.claim(None, "a job never shared"):  # no key: nothing to hold, nothing written
        pass
    assert sorted(p.name for p in Path("results/reuse").iterdir()) == ["k.lock"]


def test_a_file_system_without_locks_lets_the_job_compute_and_says_so(tmp_path, monkeypatch, capsys):
    import errno
    import fcntl

    def no_locks(f, op):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(fcntl, "flock", no_locks)
    entered = []
    with reuse.claim("k", "stage 0 of a"):
        entered.append(True)
    assert entered == [True]
    assert "no lock on results/reuse/k.lock (No locks available)" in capsys.readouterr().out


def test_a_job_submitted_to_the_cluster_computes_without_claiming_its_heads_lock(monkeypatch, tmp_path):
    """The head holds the key's lock while its SLURM job runs (reuse.claim), so the job must not claim it again."""
    from types import SimpleNamespace

    from harness import cli, launch

    sent = []
    monkeypatch.setattr("harness.config.load.load_cluster", lambda name: SimpleNamespace(launcher="slurm"))
    monkeypatch.setattr(launch, "submit_and_wait", lambda main, argv, *rest: sent.append(argv))
    args = SimpleNamespace(cluster="slurm", argv=["--cluster", "slurm", "train", "--paper", "p", "--seed", "0"])
    assert cli._remote(args, SimpleNamespace(cpus_per_task=4), tmp_path, "train.p")
    assert sent == [["--cluster", "local", "--no-reuse", "--threads", "4", "train", "--paper", "p", "--seed", "0"]]


def test_reuse_false_reaches_every_job_command_and_a_bad_value_is_refused(tmp_path):
    from harness.config.errors import ConfigError
    from harness.config.selection import workflow_config
    from tests.conftest import run_snakemake

    with pytest.raises(ConfigError, match="reuse: expected true or false"):
        workflow_config({"reuse": "sometimes"})
    write(tmp_path / "papers", "p", BUNDLE)
    shown = run_snakemake(tmp_path, "-n", "-p", config=("reuse=false",)).stdout
    commands = [
        line for line in shown.splitlines() if " -m harness " in line and (" train " in line or " evaluate " in line)
    ]
    assert commands and all("--no-reuse" in c for c in commands)
    assert "--no-reuse" not in run_snakemake(tmp_path, "-n", "-p").stdout
