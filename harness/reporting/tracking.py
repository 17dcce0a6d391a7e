"""MLflow: the index and UI over results/ (never the source of truth). The only module importing mlflow.

One experiment per paper; one run per (scale, variant, seed), found again by its `harness.run_key`
tag so that re-tracking updates the same run. A run whose config changed replaces the old one
(deleted), so the experiment table always mirrors results/. Per variant, an aggregate run carries
the mean and spread over seeds; a summary run carries the claims and the leaderboard.
Default store: sqlite under results/; `MLFLOW_TRACKING_URI` points elsewhere (a team server).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.config.plain import fingerprint, plain_dataset, plain_eval, to_plain
from harness.config.stage import ObjectiveConfig
from harness.evaluation.metrics import COUNTS
from harness.evaluation.results import read_result
from harness.launch import job_ids
from harness.layout import (
    PRETRAIN_SUMMARY,
    ROOT,
    Run,
    checkpoint_eval_file,
    eval_file,
    model_dir,
    stage_summary,
    tracked_file,
    write_atomic,
)
from harness.layout import RESULTS as RESULTS_DIR
from harness.offline import run_revisions
from harness.stages import STAGES

RESULTS = Path(RESULTS_DIR)


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(RESULTS / 'mlflow.db').resolve()}"


def public_uri(uri: str) -> str:
    """`uri` without credentials (user:password@), fit for logs, files and tags.

    >>> public_uri("http://alice:s3cret@mlflow.lab:5000"), public_uri("sqlite:///results/mlflow.db")
    ('http://mlflow.lab:5000', 'sqlite:///results/mlflow.db')
    """
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.password is None and parts.username is None:
        return uri
    return urlunsplit(parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")))


def ui_command(host: str, port: int) -> list[str]:
    """The MLflow UI over this project's store (the embedded sqlite default, or MLFLOW_TRACKING_URI)."""
    return [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        tracking_uri(),
        "--host",
        host,
        "--port",
        str(port),
    ]


def leaderboard_links(base_url: str) -> list[str]:
    """A UI link per paper: its runs table in "model training" mode, the aggregate rows (mean over seeds)."""
    from urllib.parse import quote

    with _session() as mlflow:
        experiments = [e for e in mlflow.search_experiments() if e.name != "Default"]
    query = quote("tags.`harness.kind` = 'aggregate'")

    def order(e) -> str:  # best first by the leaderboard's headline metric (mean over seeds)
        headline = e.tags.get("harness.headline")
        return f"&orderByKey={quote(f'metrics.`{headline}`', safe='')}&orderByAsc=false" if headline else ""

    return [f"{e.name}: {base_url}/#/experiments/{e.experiment_id}/runs?workflowType=machine_learning&searchFilter={query}"
            + order(e) for e in experiments]  # fmt: skip


def metric_name(name: str) -> str:
    """MLflow metric names allow no '@': pass@4 -> pass_at_4."""
    return name.replace("@", "_at_")


@contextlib.contextmanager
def _session() -> Iterator[Any]:
    """mlflow, set up, under an exclusive lock (parallel jobs share one sqlite file)."""
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / ".mlflow.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        import mlflow

        mlflow.set_tracking_uri(_credentials_to_env(tracking_uri()))
        yield mlflow


def _credentials_to_env(uri: str) -> str:
    """`uri` without user:password@; they go to MLflow's basic-auth variables instead.

    MLflow prints the tracking URI ("View run ... at ...") into job logs, so it must carry no
    credentials; the client still authenticates from the environment.
    """
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(uri)
    if parts.username is not None:
        os.environ.setdefault("MLFLOW_TRACKING_USERNAME", unquote(parts.username))
    if parts.password is not None:
        os.environ.setdefault("MLFLOW_TRACKING_PASSWORD", unquote(parts.password))
    return public_uri(uri)


def _experiment(mlflow, paper: str) -> str:
    exp = mlflow.get_experiment_by_name(paper)
    if exp is not None:
        return exp.experiment_id
    # A local store keeps artifacts under results/; a server decides for itself.
    local = mlflow.get_tracking_uri().startswith(("sqlite:", "file:"))
    location = (RESULTS / "mlartifacts" / paper).resolve().as_uri() if local else None
    return mlflow.create_experiment(paper, artifact_location=location)


def _find(mlflow, exp_id: str, key: str) -> Any | None:
    runs = mlflow.search_runs([exp_id], filter_string=f"tags.`harness.run_key` = '{key}'", output_format="list")
    return runs[0] if runs else None


def _open_run(mlflow, exp_id: str, key: str, name: str, config_hash: str) -> str:
    """The run id for `key`: the existing run if its config is unchanged, else a fresh run."""
    old = _find(mlflow, exp_id, key)
    if old is not None and old.data.tags.get("harness.config_hash") == config_hash:
        return old.info.run_id
    if old is not None:
        mlflow.delete_run(old.info.run_id)
    run = mlflow.MlflowClient().create_run(exp_id, run_name=name, tags={"harness.run_key": key})
    return run.info.run_id


def _flatten(d: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(d, dict):
        out: dict[str, str] = {}
        for k, v in d.items():
            out |= _flatten(v, f"{prefix}{k}.")
        return out
    if isinstance(d, list) and d and isinstance(d[0], dict):
        out = {}
        for i, v in enumerate(d):
            out |= _flatten(v, f"{prefix}{i}.")
        return out
    return {prefix.rstrip("."): str(d)[:500]}


def method_name(variant) -> str:
    """A short, filterable name of what a variant trains, or `base`.

    `grpo[majority_vote]@pool`; objective pieces other than the defaults follow the rewards:
    `grpo[exact_match|sign_split+reinforce]@train`.
    """
    return " > ".join(_stage_name(s) for s in variant.stages) or "base"


def _stage_name(stage) -> str:
    default = ObjectiveConfig()
    o = stage.objective
    pieces = [p for p, d in ((o.advantage.name, default.advantage.name), (o.loss.name, default.loss.name),
                             (o.aggregation, default.aggregation)) if p != d]  # fmt: skip
    pieces += [a.name for a in o.aux]
    inside = ",".join(r.name for r in stage.rewards) + ("|" + "+".join(pieces) if pieces else "")
    return f"{stage.kind}[{inside}]@{stage.data}" if inside else f"{stage.kind}@{stage.data}"


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "transformers", "trl", "lm-eval", "mlflow", "snakemake", "submitit", "omegaconf"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def _log(
    mlflow, run_id: str, params: dict[str, str], tags: dict[str, str], metrics: list[tuple[str, float, int]]
) -> None:
    """Batched logging; params already on the run are skipped (MLflow params are write-once)."""
    from mlflow.entities import Metric, Param, RunTag

    client, now = mlflow.MlflowClient(), int(time.time() * 1000)
    existing = client.get_run(run_id).data.params
    ps = [Param(k, v) for k, v in params.items() if k not in existing]
    ms = [Metric(metric_name(k), float(v), now, step) for k, v, step in metrics]
    for i in range(0, len(ps), 100):  # MLflow's per-batch limits: 100 params, 1000 metrics
        client.log_batch(run_id, params=ps[i : i + 100])
    for i in range(0, len(ms), 1000):
        client.log_batch(run_id, metrics=ms[i : i + 1000])
    client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])


def track_run(plan, run: Run) -> dict:
    """Log one run's config, curves, eval metrics and artifacts; write its tracked.json."""
    rp = plan.papers[run.paper]
    variant = rp.variants[run.variant]
    config = {"scale": run.scale, "seed": run.seed, "variant": to_plain(variant), "model": to_plain(rp.models[variant.model]),
              "dataset": {"name": rp.dataset_name, **plain_dataset(rp.dataset)}, "eval": {"name": rp.eval_name, **plain_eval(rp.eval)}}  # fmt: skip
    result = read_result(eval_file(run))
    config_hash = fingerprint({"config": config, "protocol": result["protocol"]})
    stages = [json.loads(Path(stage_summary(run, i)).read_text()) for i in range(len(variant.stages))]
    metrics: list[tuple[str, float, int]] = []
    offset = 0
    for i, st in enumerate(stages):
        prefix = "train/" if len(stages) == 1 else f"train/stage{i}/"
        kind = STAGES.get(st["kind"])  # numbers of a stage without optimizer steps (what a generate stage sampled)
        metrics += [(prefix + k, st[k], offset) for k in kind.summary_numbers]
        for entry in st.get("log_history", []):
            metrics += [(prefix + k, v, offset + entry["step"]) for k, v in entry.items()
                        if isinstance(v, (int, float)) and k not in ("step", "epoch")]  # fmt: skip
        offset += st.get("global_step", 0)
    for task, m in result["metrics"].items():
        metrics += [(f"{task}/{k}", v, 0) for k, v in m.items() if isinstance(v, (int, float))]
    metrics += _during_training(plan, run, stages, result)
    tags = {
        "harness.run_key": run.key, "harness.kind": "run", "paper": run.paper, "scale": run.scale,
        "variant": run.variant, "seed": str(run.seed), "model": variant.model, "method": method_name(variant),
        "description": variant.description,
        "git_commit": git_commit(), "harness.config_hash": config_hash,
        "protocol_hash": fingerprint(result["protocol"]),
        "slurm.job_ids": ",".join(job_ids(Path(run.dir))) or "none",
        **{f"version.{k}": v for k, v in package_versions().items()},
    }  # fmt: skip
    for i, st in enumerate(stages):  # how each stage generated (engine, version, vLLM mode); older ones say nothing
        tags |= {f"generation.stage{i}.{k}": str(v) for k, v in st.get("generation", {}).items()}
        tags |= {f"sandbox.stage{i}.{k}": str(v) for k, v in st.get("sandbox", {}).items()}  # code rewards' isolation
    tags |= run_revisions(rp, run.variant)  # the hub commit of each hub item it read (none for toy runs)
    tags |= base_skill(variant.model, rp.models[variant.model].source)
    with _session() as mlflow:
        exp_id = _experiment(mlflow, run.paper)
        run_id = _open_run(mlflow, exp_id, run.key, f"{run.scale}/{run.variant}/seed{run.seed}", config_hash)
        _log(mlflow, run_id, _flatten(config | {"protocol": result["protocol"]}), tags, metrics)
        client = mlflow.MlflowClient()
        client.log_dict(run_id, config, "config.json")
        client.log_artifacts(run_id, str(Path(eval_file(run)).parent), "eval")
        for i in range(len(stages)):
            client.log_artifact(run_id, stage_summary(run, i), f"stage{i}")
        client.set_terminated(run_id)
    info = {
        "run_id": run_id,
        "experiment_id": exp_id,
        "tracking_uri": public_uri(tracking_uri()),
        "config_hash": config_hash,
    }
    write_atomic(tracked_file(run), json.dumps(info, indent=1))
    print(f"tracked {run.key} as MLflow run {run_id}")
    return info


def base_skill(model: str, source: str) -> dict[str, str]:
    """A toy base's skill as its build measured it (pretrain.json): `base.greedy_accuracy`, `base.skill_band`,
    `base.pretrain_steps`; nothing for other models or a base built before skills were recorded."""
    file = Path(model_dir(model)) / PRETRAIN_SUMMARY
    if source != "toy" or not file.is_file():
        return {}
    made = json.loads(file.read_text())
    out = {"base.greedy_accuracy": f"{made['greedy_test_accuracy']:.3f}", "base.pretrain_steps": str(made["steps"])}
    return out | ({"base.skill_band": "-".join(f"{v:g}" for v in made["skill"])} if made.get("skill") else {})


def _during_training(plan, run: Run, stages: list[dict], final: dict) -> list[tuple[str, float, int]]:
    """`during/<task>/<metric>` at each evaluated checkpoint's global step, ending with the final model's
    eval at the last step: a run's benchmark accuracy over training, one MLflow metric history each."""
    if not plan.papers[run.paper].eval_checkpoints or not stages:
        return []
    points, offset = [], 0
    for i, st in enumerate(stages):
        for step in plan.snapshot_steps(run, i):
            points.append((offset + step, read_result(checkpoint_eval_file(run, i, step))))
        offset += st.get("global_step", 0)
    points.append((offset, final))
    return [(f"during/{task}/{k}", v, step) for step, result in points for task, m in result["metrics"].items()
            for k, v in m.items() if isinstance(v, (int, float)) and k not in COUNTS and not k.startswith("avg@")]  # fmt: skip


def log_summary(paper: str, scale: str, board: dict, files: list[Path], text: str = "") -> None:
    """Aggregate runs (one per variant: mean and spread over seeds), the paper's summary run, and `text` (the
    leaderboard and verdicts in Markdown) as the experiment's description."""
    with _session() as mlflow:
        exp_id = _experiment(mlflow, paper)
        for row in board["rows"]:
            key = f"{paper}/{scale}/{row['variant']}/aggregate"
            run_id = _open_run(mlflow, exp_id, key, f"{scale}/{row['variant']}/mean", fingerprint(row["seeds"]))
            metrics = [
                (f"{row['task']}/{m}_{stat}", v[stat], 0) for m, v in row["metrics"].items() for stat in ("mean", "std")
            ]
            tags = {"harness.run_key": key, "harness.kind": "aggregate", "paper": paper, "scale": scale,
                    "variant": row["variant"], "model": row["model"], "seeds": ",".join(map(str, row["seeds"]))}  # fmt: skip
            _log(mlflow, run_id, {}, tags, metrics + [("n_seeds", len(row["seeds"]), 0)])
            mlflow.MlflowClient().set_terminated(run_id)
        key = f"{paper}/{scale}/summary"
        run_id = _open_run(mlflow, exp_id, key, f"{scale}/summary", "summary")
        tags = {"harness.run_key": key, "harness.kind": "summary", "paper": paper, "scale": scale}
        tags["verdicts"] = board["summary"]
        for i, c in enumerate(board["claims"]):
            tags[f"claim.{i}"] = f"{c['verdict']}: {c['statement']}"[:5000]
        for i, d in enumerate(board.get("deviations", [])):
            tags[f"deviation.{i}"] = f"{d['field']}: paper {d['paper']}, ours {d['ours']} ({d['why']})"[:5000]
        for i, r in enumerate(board["reported"]):
            what = f"{r['variant']} over {r['over']}" if r.get("over") else r["variant"]
            tags[f"reported.{i}"] = (f"{r['verdict']}: {what} {r['benchmark']} {r['metric']} paper {r['value']}"
                                     + (f", tolerance {r['tolerance']:.3f} ({r['tolerance_from']})" if r.get("tolerance_from") else "")
                                     + "".join(f" [flag: {f}]" for f in r.get("flags", [])))  # fmt: skip
        _log(mlflow, run_id, {}, tags, [])
        for f in files:
            mlflow.MlflowClient().log_artifact(run_id, str(f))
        mlflow.MlflowClient().set_terminated(run_id)
        _describe(mlflow.MlflowClient(), exp_id, scale, board, text)


NOTE = "mlflow.note.content"
"""The experiment tag MLflow's UI shows as the experiment's description (Markdown)."""


def _describe(client, exp_id: str, scale: str, board: dict, text: str) -> None:
    """The experiment's description: each scale's generated leaderboard and verdicts (`text`, Markdown), so the
    paper's page reads at a glance; `harness.headline`: the metric its leaderboard link sorts by."""
    client.set_experiment_tag(exp_id, f"harness.board.{scale}", text[:6000])
    tags = client.get_experiment(exp_id).tags
    boards = [tags[k] for k in sorted(tags) if k.startswith("harness.board.")]
    client.set_experiment_tag(exp_id, NOTE, "\n\n".join(boards)[:20000])  # MLflow keeps 20,000 characters
    if board["rows"]:
        client.set_experiment_tag(
            exp_id, "harness.headline", f"{board['rows'][0]['task']}/{metric_name('pass@1')}_mean"
        )
