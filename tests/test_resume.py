"""Resuming after a kill, without SLURM: an evaluation killed mid-way answers only what it had not (with the
samples of an uninterrupted run), and the ranks of a training job look for checkpoints only after rank 0
removed stale ones. The SLURM side (requeue, a restarted head node) is in tests/test_slurm_resume.py."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from harness.evaluation.resume import AnswerCache, answered, cache_file
from tests.conftest import ROOT, free_port

# 16 questions x 4 samples = 64 requests, answered 8 at a time: 8 chunks.
CFG = dict(tasks=["toy_arith"], n_samples=4, max_new_tokens=4, batch_size=8, limit=16)
KILLED = textwrap.dedent(f"""
    import os, signal, sys
    import torch
    from pathlib import Path
    from harness.config.components import EvalConfig
    from harness.evaluation import resume
    from harness.evaluation.evaluate import evaluate

    torch.set_num_threads(1)
    put, done = resume.AnswerCache.put, []

    def put_then_die(self, *args):  # the job dies (SIGKILL: nothing flushed or closed) after 3 committed chunks
        put(self, *args)
        done.append(1)
        if len(done) == 3:
            os.kill(os.getpid(), signal.SIGKILL)

    resume.AnswerCache.put = put_then_die
    evaluate(sys.argv[1], EvalConfig(**{CFG!r}), 5, Path(sys.argv[3]), sys.argv[2])
""")


def test_a_killed_evaluation_resumes_with_the_samples_of_an_uninterrupted_one(world, tmp_path, capsys):
    import torch

    from harness.config.components import EvalConfig
    from harness.evaluation.evaluate import evaluate

    root, _ = world
    model, data = str(root / "model"), str(root / "data")
    argv = [model, data, str(tmp_path / "resumed")]
    killed = subprocess.run(
        [sys.executable, "-c", KILLED, *argv], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert answered(cache_file(tmp_path / "resumed")) == 24  # the three committed chunks survive the kill
    assert not (tmp_path / "resumed" / "metrics.json").exists()

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the killed process: the same arithmetic, so the same samples
    try:
        capsys.readouterr()
        evaluate(model, EvalConfig(**CFG), 5, tmp_path / "resumed", data)
        assert "generate_until: 64 requests, 24 answered by an earlier attempt (from answers.rank0.sqlite), " \
               "40 generated now" in capsys.readouterr().out  # fmt: skip
        evaluate(model, EvalConfig(**CFG), 5, tmp_path / "whole", data)
        assert "generate_until: 64 requests, 0 answered by an earlier attempt" in capsys.readouterr().out
    finally:
        torch.set_num_threads(threads)
    samples = [(tmp_path / d / "samples.jsonl").read_text() for d in ("whole", "resumed")]
    assert samples[0] == samples[1]  # the same samples, not merely the same distribution
    metrics = [json.loads((tmp_path / d / "metrics.json").read_text())["metrics"] for d in ("whole", "resumed")]
    assert metrics[0] == metrics[1]
    assert not cache_file(tmp_path / "resumed").exists() and not cache_file(tmp_path / "whole").exists()


def test_answers_of_another_model_or_protocol_are_never_read(tmp_path):
    path = cache_file(tmp_path)
    first = AnswerCache(path, key="model A, seed 0")
    first.put("generate_until", 0, "digest", ["12", "13"])
    assert first.get("generate_until", 0, "digest") == ["12", "13"]
    assert first.get("generate_until", 0, "other requests") is None
    first.db.close()
    assert AnswerCache(path, key="model A, seed 0").get("generate_until", 0, "digest") == ["12", "13"]
    assert AnswerCache(path, key="model B, seed 0").get("generate_until", 0, "digest") is None
    assert answered(path) == 0  # the other key emptied it
    AnswerCache(path, key="model B, seed 0").remove()
    assert not path.exists()


# ----------------------------------------------------------------------------- checkpoints across ranks


def _rank(rank: int, ckpt: str, port: int, distributed: bool, found) -> None:
    from harness.stages.plumbing import prepare_checkpoints

    os.environ.update(RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if distributed:
        import torch.distributed as dist

        dist.init_process_group("gloo", rank=rank, world_size=2)
    if rank == 0:
        time.sleep(2)  # rank 0 comes late: rank 1 must not pick the stale checkpoint meanwhile
    found[rank] = prepare_checkpoints(Path(ckpt), "new-config", wait_s=120)


def test_ranks_resume_only_after_rank_0_removed_stale_checkpoints(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    for distributed in (False, True):  # a file-based wait before torch.distributed is up, a barrier after
        ckpt = tmp_path / f"checkpoints-{distributed}"
        (ckpt / "checkpoint-20").mkdir(parents=True)
        (ckpt / "fingerprint.txt").write_text("old-config")
        with ctx.Manager() as manager:
            found = manager.dict()
            port = free_port()
            procs = [ctx.Process(target=_rank, args=(r, str(ckpt), port, distributed, found)) for r in (0, 1)]
            for p in procs:
                p.start()
            for p in procs:
                p.join(timeout=180)
            assert [p.exitcode for p in procs] == [0, 0]
            assert dict(found) == {0: None, 1: None}, distributed  # nobody resumes the other config's step 20
        assert (ckpt / "fingerprint.txt").read_text() == "new-config" and not (ckpt / "checkpoint-20").exists()
