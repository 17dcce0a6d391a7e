"""Offline compute nodes (harness/hub.py): a hub cache laid out as snapshot_download writes it, built from the toy
world, read by a training stage and an evaluation with the hub unreachable; fetch refusals and pinning.

The hub itself is the only thing not real here: its cache is written by hand, and pinning gets the current
commit from a stub instead of HfApi.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, clean_env, write_bundle

MODEL_ID, DATA_ID, TASK_DATA_ID = "toy-org/toy-model", "toy-org/toy-arith", "math-ai/amc23"
MODEL_SHA, DATA_SHA, TASK_SHA = (hashlib.sha1(s.encode()).hexdigest() for s in (MODEL_ID, DATA_ID, TASK_DATA_ID))

RUNNER = """
import sys
from pathlib import Path
log = open(sys.argv[1], "a")
sys.addaudithook(lambda event, args: event == "socket.connect" and log.write(repr(args[1]) + "\\n") and log.flush())
import harness.config.read as read
read.CONFIGS = Path(sys.argv[2])
from harness.cli import main
sys.exit(main(sys.argv[3:]))
"""
"""`harness` with configs/ taken from a test folder; every socket connection attempt is written to a log."""


def put_snapshot(repo: Path, sha: str, files: dict[str, bytes]) -> Path:
    """Files as snapshot_download lays them out: blobs/<hash>, snapshots/<commit>/<path> -> blob, refs/main."""
    for rel, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = repo / "snapshots" / sha / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(sha)
    return repo / "snapshots" / sha


def parquet(rows: list[dict]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows), sink)
    return sink.getvalue().to_pybytes()


@pytest.fixture(scope="module")
def offline(world, tmp_path_factory):
    """A work folder with configs/ (hub model, dataset and eval suite, pinned), a bundle, and the hub cache hf/."""
    from harness.world.splits import read_split

    root, _ = world
    wd = tmp_path_factory.mktemp("offline")
    hub = wd / "hf" / "hub"
    model_files = {p.name: p.read_bytes() for p in (root / "model").iterdir() if p.is_file()}
    put_snapshot(hub / f"models--{MODEL_ID.replace('/', '--')}", MODEL_SHA, model_files)
    train = [{"prompt": r["prompt"], "answer": r["answer"]} for r in read_split(root / "data", "train")]
    put_snapshot(hub / f"datasets--{DATA_ID.replace('/', '--')}", DATA_SHA,
                 {"data/train-00000-of-00001.parquet": parquet(train), "README.md": b"# toy arithmetic\n"})  # fmt: skip
    questions = [{"id": i, "question": r["prompt"], "answer": float(r["answer"]), "url": ""}
                 for i, r in enumerate(read_split(root / "data", "test")[:4])]  # fmt: skip
    put_snapshot(hub / f"datasets--{TASK_DATA_ID.replace('/', '--')}", TASK_SHA,
                 {"data/test-00000-of-00001.parquet": parquet(questions)})  # fmt: skip
    configs = wd / "configs"
    shutil.copytree(ROOT / "configs", configs)
    (configs / "models" / "hub-toy.yaml").write_text(
        f"# the toy model as a hub repository\nsource: hub\nhub_id: {MODEL_ID}\nrevision: {MODEL_SHA}\n")  # fmt: skip
    (configs / "datasets" / "hub-toy.yaml").write_text(
        f"# toy arithmetic as a hub dataset\nsource: hub\nhub_path: {DATA_ID}\nrevision: {DATA_SHA}\n")  # fmt: skip
    (configs / "eval" / "hub-toy.yaml").write_text(
        "# a stock-style task reading a hub dataset\ntasks: [amc23]\nn_samples: 2\nmax_new_tokens: 4\nlimit: 2\n"
        f"batch_size: 8\nrevisions: {{{TASK_DATA_ID}: {TASK_SHA}}}\n")  # fmt: skip
    write_bundle(wd / "papers", "hubtoy", """
paper: {title: offline compute nodes}
variants:
  base: {}
  sft: {stages: [{kind: sft}]}
scales:
  toy:
    model: hub-toy
    dataset: hub-toy
    eval: hub-toy
    seeds: [0]
    trainers: {sft: {max_steps: 2, per_device_train_batch_size: 8, save_steps: 2, logging_steps: 1}}
""")  # fmt: skip
    return wd


def harness_offline(wd: Path, *argv: str) -> subprocess.CompletedProcess:
    """`harness` in a fresh process, the hub unreachable (offline, and an endpoint nothing listens on)."""
    env = clean_env() | {"HF_HOME": str(wd / "hf"), "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9",
                         "HF_TOKEN": "hf_not_passed_on", "PYTHONPATH": str(ROOT)}  # fmt: skip
    env.pop("HF_HUB_CACHE", None)
    env.pop("HF_DATASETS_CACHE", None)
    cmd = [sys.executable, "-c", RUNNER, str(wd / "connects.log"), str(wd / "configs"),
           "--papers-dir", str(wd / "papers"), *argv]  # fmt: skip
    return subprocess.run(cmd, cwd=wd, env=env, capture_output=True, text=True, timeout=600)


def connections(wd: Path) -> list[str]:
    log = wd / "connects.log"
    return log.read_text().splitlines() if log.is_file() else []


def test_fetch_of_cached_pinned_items_needs_no_network(offline):
    proc = harness_offline(offline, "fetch", "hubtoy", "--scale", "toy")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "3 hub items" in proc.stdout and "[3/3]" in proc.stdout
    markers = sorted(
        p.relative_to(offline / "results/hub").as_posix() for p in (offline / "results/hub").rglob("*.json")
    )
    assert markers[0] == f"datasets/toy-org--toy-arith@{DATA_SHA}.json"
    assert markers[1].startswith("eval/hub-toy@") and markers[2] == f"models/toy-org--toy-model@{MODEL_SHA}.json"
    model = json.loads((offline / "results/hub" / markers[2]).read_text())["items"][0]
    assert model["snapshot"] == str(offline / "hf/hub/models--toy-org--toy-model/snapshots" / MODEL_SHA)
    assert connections(offline) == []


def test_training_and_evaluation_read_only_the_cache(offline):
    from harness.layout import Run, eval_file, stage_summary

    train = harness_offline(offline, "train", "--paper", "hubtoy", "--scale", "toy", "--variant", "sft", "--seed",
                            "0", "--stage", "0")  # fmt: skip
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    run = Run("hubtoy", "toy", "sft", 0)
    summary = json.loads((offline / stage_summary(run, 0)).read_text())
    assert summary["init_model"] == str(offline / "hf/hub/models--toy-org--toy-model/snapshots" / MODEL_SHA)
    assert summary["global_step"] == 2

    evaluate = harness_offline(offline, "evaluate", "--paper", "hubtoy", "--scale", "toy", "--variant", "sft",
                               "--seed", "0")  # fmt: skip
    assert evaluate.returncode == 0, evaluate.stdout[-3000:] + evaluate.stderr[-3000:]
    out = Path(offline / eval_file(run)).parent
    result = json.loads((out / "metrics.json").read_text())
    assert result["metrics"]["amc23"]["samples_per_question"] == 2
    assert len((out / "samples.jsonl").read_text().splitlines()) == 2  # limit: 2 questions
    lm_eval = json.loads((out / "lm_eval_results.json").read_text())
    assert lm_eval["configs"]["amc23"]["dataset_path"] == str(offline / "hf/hub/datasets--math-ai--amc23/snapshots"
                                                              / TASK_SHA)  # fmt: skip
    assert connections(offline) == []


def _bundle_with(tmp_path, monkeypatch, model_yaml: str):
    from harness.config import read

    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    (tmp_path / "configs" / "models" / "m.yaml").write_text(model_yaml)
    monkeypatch.setattr(read, "CONFIGS", tmp_path / "configs")
    write_bundle(tmp_path / "papers", "p", "paper: {title: t}\nvariants: {base: {}}\n"
                 "scales: {toy: {model: m, dataset: toy-arith, eval: toy-arith}}\n")  # fmt: skip
    return tmp_path / "configs" / "models" / "m.yaml"


def test_fetch_refuses_an_unpinned_item_naming_file_and_key(tmp_path, monkeypatch, capsys):
    from harness import hub
    from harness.cli import main
    from harness.config.errors import ConfigError

    file = _bundle_with(tmp_path, monkeypatch, "# a hub model\nsource: hub\nhub_id: org/unpinned\n")
    items = hub.items_of(["p"], "toy", tmp_path / "papers")
    assert [(i.repo_id, i.revision) for i in items] == [("org/unpinned", None)]
    with pytest.raises(ConfigError) as info:
        hub.fetch(items, tmp_path / "hf")
    assert str(info.value).startswith(f"{file}: revision: "), str(info.value)
    assert "harness fetch --pin" in str(info.value)
    assert not (tmp_path / "hf").exists()  # refused before anything downloads
    assert main(["--papers-dir", str(tmp_path / "papers"), "fetch", "p", "--scale", "toy"]) == 2
    assert f"{file}: revision: " in capsys.readouterr().err


def test_fetch_refuses_a_gated_model_without_a_token(tmp_path, monkeypatch):
    from harness import hub, offline

    for var in offline.TOKEN_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    _bundle_with(tmp_path, monkeypatch, f"source: hub\nhub_id: org/gated\nrevision: {MODEL_SHA}\ngated: true\n")
    with pytest.raises(hub.FetchError, match="accept its licence .* set HF_TOKEN"):
        hub.fetch(hub.items_of(["p"], "toy", tmp_path / "papers"), tmp_path / "hf")


def test_pin_writes_the_commit_and_keeps_comments(tmp_path, monkeypatch):
    from harness import hub
    from harness.config import read
    from harness.pinning import pin

    file = _bundle_with(tmp_path, monkeypatch, "# a hub model\nsource: hub  # from the hub\nhub_id: org/m\n")
    pinned = pin(hub.items_of(["p"], "toy", tmp_path / "papers"), log=lambda _: None,
                     resolve=lambda item: MODEL_SHA)  # fmt: skip
    assert [i.revision for i in pinned] == [MODEL_SHA]
    assert file.read_text() == f"# a hub model\nsource: hub  # from the hub\nhub_id: org/m\nrevision: {MODEL_SHA}\n"
    assert read.load_component("models", "m", file, "").revision == MODEL_SHA


def test_only_runs_with_hub_items_wait_for_a_fetch(tmp_path):
    from harness.plan import Plan

    toy = Plan(["one-shot-rlvr"], "toy")
    run = next(r for r in toy.runs("one-shot-rlvr") if toy._stages(r))
    assert not [p for p in toy.stage_inputs(run, 0) + toy.eval_inputs(run) if p.startswith("results/hub/")]
    paper = Plan(["one-shot-rlvr"], "paper")
    run = next(r for r in paper.runs("one-shot-rlvr") if r.variant == "one_shot")
    assert "results/hub/models/Qwen--Qwen2.5-Math-1.5B@unpinned.json" in paper.stage_inputs(run, 0)
    assert any(p.startswith("results/hub/eval/math-reasoning-greedy-question@") for p in paper.eval_inputs(run))
    assert any(p.startswith("results/hub/datasets/pi1_r128.parquet@75a7a6eec9") for p in paper.stage_inputs(run, 0))
    # the authors' pi_1 file, fetched like a hub item


def test_a_hub_dataset_with_a_test_split_only_is_read_by_its_split(offline):
    """`split: test` reads a repository holding a test split only (math-ai/aime25's layout) from the cache; the
    default (`train`) finds none there; a url dataset cannot name a split."""
    from harness.config.checks import check_dataset
    from harness.config.components import DatasetConfig
    from harness.config.errors import ConfigError
    from harness.offline import local_dataset
    from harness.stages.data import check_fetched, iter_rows

    cfg = DatasetConfig(source="hub", hub_path=TASK_DATA_ID, revision=TASK_SHA, split="test", prompt_field="question")
    folder = Path(local_dataset(cfg, offline / "hf"))
    rows = list(iter_rows(cfg, folder))
    assert len(rows) == 4 and check_fetched(cfg, folder) == 4 and rows[0]["prompt"]
    with pytest.raises(ValueError, match="train"):
        list(iter_rows(DatasetConfig(source="hub", hub_path=TASK_DATA_ID, revision=TASK_SHA, prompt_field="question"),
                       folder))  # fmt: skip
    with pytest.raises(ConfigError, match="split: only a hub dataset has splits"):
        check_dataset(DatasetConfig(source="url", url="https://x/a.parquet", split="test"), Path("d.yaml"))
