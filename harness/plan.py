"""Pure functions from resolved configs to runs, output paths and per-job fingerprints.

The Snakefile is a thin shell over this module. Paths are relative to the working directory
(Snakemake's `--directory`, the repository root by default). A job's fingerprint hashes exactly
the configuration that job reads; Snakemake records it as a param, so changing one value in a
paper re-runs only the jobs whose fingerprint changed (and what depends on their outputs).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.config import (
    GENERATED,
    PAPERS,
    POLICY_KINDS,
    ConfigError,
    ResolvedPaper,
    list_papers,
    load_component,
    load_paper,
    load_paper_config,
    paper_file,
    to_plain,
)
from harness.schema import LATER_DATASET_FIELDS, LATER_EVAL_FIELDS, LATER_STAGE_FIELDS

RESULTS = "results"
WORLD = f"{RESULTS}/world"
RUNS = f"{RESULTS}/runs"
DATA_SPLITS = ("pretrain", "train", "pool", "test")


def plain_stage(stage: Any) -> dict:
    """A resolved stage as plain data for hashing, without the LATER_STAGE_FIELDS that are unset."""
    return _drop_unset(to_plain(stage), LATER_STAGE_FIELDS)


def plain_dataset(dataset: Any) -> dict:
    """A dataset config as plain data for hashing, without the LATER_DATASET_FIELDS that are unset."""
    return _drop_unset(to_plain(dataset), LATER_DATASET_FIELDS)


def plain_eval(cfg: Any) -> dict:
    """An eval suite as plain data for hashing, without the LATER_EVAL_FIELDS that are unset."""
    return _drop_unset(to_plain(cfg), LATER_EVAL_FIELDS)


def _drop_unset(out: dict, fields: tuple[str, ...]) -> dict:
    for dotted in fields:
        *parents, key = dotted.split(".")
        holder = out
        for p in parents:
            holder = holder[p]
        if holder.get(key) is None:
            holder.pop(key, None)
    return out


def fingerprint(obj: Any) -> str:
    """A short stable hash of JSON-able data."""
    blob = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Run:
    """One (paper, scale, variant, seed): one MLflow run, one directory of results."""

    paper: str
    scale: str
    variant: str
    seed: int

    @property
    def dir(self) -> str:
        return f"{RUNS}/{self.paper}/{self.scale}/{self.variant}/seed{self.seed}"

    @property
    def key(self) -> str:
        return f"{self.paper}/{self.scale}/{self.variant}/seed{self.seed}"


def data_dir(dataset: str) -> str:
    return f"{WORLD}/data/{dataset}"


def tokenizer_dir(dataset: str) -> str:
    return f"{WORLD}/tokenizers/{dataset}"


def model_dir(model: str) -> str:
    return f"{WORLD}/models/{model}"


def stage_dir(run: Run, i: int) -> str:
    return f"{run.dir}/stage{i}"


def eval_file(run: Run) -> str:
    return f"{run.dir}/eval/metrics.json"


def checkpoint_eval_file(run: Run, stage: int, step: int) -> str:
    return f"{stage_dir(run, stage)}/evals/step{step}/metrics.json"


def snapshot_dir(run: Run, stage: int, step: int) -> str:
    """The model saved at `step` of a stage for evaluation during training (harness.train)."""
    return f"{stage_dir(run, stage)}/snapshots/step{step}"


def evenly_spaced(max_steps: int, n: int) -> list[int]:
    """`n` optimizer steps spread evenly inside (0, max_steps), the final step excluded (it is the run's own eval).

    >>> evenly_spaced(100, 3), evenly_spaced(100, 0), evenly_spaced(3, 5)
    ([25, 50, 75], [], [1, 2])
    """
    return sorted({round(max_steps * j / (n + 1)) for j in range(1, n + 1)} - {0, max_steps})


def tracked_file(run: Run) -> str:
    return f"{run.dir}/tracked.json"


def leaderboard_file(paper: str, scale: str) -> str:
    return f"{RUNS}/{paper}/{scale}/leaderboard.json"


SETS_FILE = "sets.yaml"


def select_papers(
    value: str | list[str] | None, papers_dir: Path | str = PAPERS, scale: str | None = None
) -> list[str]:
    """The papers a run covers, from Snakemake's `papers` config value.

    None: the `default` set of <papers_dir>/sets.yaml (every paper when the file or set is absent);
    `all`: every paper (given a `scale`, every paper that defines it); `@name`: the named set;
    otherwise a list or comma-separated slugs.
    """
    papers_dir = Path(papers_dir)
    if isinstance(value, str):
        value = [p for p in value.split(",") if p]
    if not value:
        value = ["@default"] if "default" in _sets(papers_dir) else ["all"]
    names: list[str] = []
    for item in value:
        if item == "all":
            every = list_papers(papers_dir)
            if scale is not None:
                every = [p for p in every if scale in load_paper_config(paper_file(p, papers_dir)).scales]
                if not every:
                    raise ConfigError(papers_dir, "papers", f"papers=all: no paper defines scale {scale!r}")
            names += every
        elif item.startswith("@"):
            sets, key = _sets(papers_dir), item[1:]
            if key not in sets:
                raise ConfigError(papers_dir / SETS_FILE, key, f"no paper set {key!r} (known: {', '.join(sets)})")
            names += sets[key]
        else:
            names.append(item)
    return list(dict.fromkeys(names))


def _sets(papers_dir: Path) -> dict[str, list[str]]:
    file = papers_dir / SETS_FILE
    if not file.is_file():
        return {}
    data = yaml.safe_load(file.read_text()) or {}
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ConfigError(file, "", "expected a mapping of set names to lists of paper slugs")
    return {str(k): [str(p) for p in v] for k, v in data.items()}


class Plan:
    """The runs of the selected papers at one scale, and what each job needs."""

    def __init__(self, papers: list[str] | None, scale: str, papers_dir: Path | str = PAPERS) -> None:
        self.scale, self.papers_dir = scale, Path(papers_dir)
        names = papers if papers is not None else select_papers(None, self.papers_dir)
        self.papers: dict[str, ResolvedPaper] = {p: load_paper(p, scale, papers_dir=self.papers_dir) for p in names}

    # -- runs and targets

    def runs(self, paper: str) -> list[Run]:
        rp = self.papers[paper]
        return [Run(paper, self.scale, v, s) for v in rp.variants for s in rp.seeds]

    def targets(self) -> list[str]:
        return [leaderboard_file(p, self.scale) for p in self.papers]

    def report_pages(self) -> list[str]:
        return [f"{RESULTS}/reports/{p}-{self.scale}.html" for p in self.papers]

    def run(self, paper: str, variant: str, seed: int | str) -> Run:
        return Run(paper, self.scale, variant, int(seed))

    # -- models

    def base_model(self, paper: str, variant: str) -> str:
        """Where the variant's base model is read from: a local dir (toy) or a hub id."""
        rp = self.papers[paper]
        name = rp.variants[variant].model
        return rp.models[name].hub_id if rp.models[name].source == "hub" else model_dir(name)

    def _stages(self, run: Run) -> list:
        return self.papers[run.paper].variants[run.variant].stages

    def latest(self, run: Run, before: int, kinds: tuple[str, ...]) -> int | None:
        """Index of the last stage before `before` whose kind is one of `kinds`, or None."""
        return next((j for j in range(before - 1, -1, -1) if self._stages(run)[j].kind in kinds), None)

    def model_after(self, run: Run, n_stages: int) -> str:
        """The policy after the first `n_stages` stages (generate and scorer stages leave it as it was)."""
        j = self.latest(run, n_stages, POLICY_KINDS)
        return f"{stage_dir(run, j)}/model" if j is not None else self.base_model(run.paper, run.variant)

    def final_model(self, run: Run) -> str:
        return self.model_after(run, len(self._stages(run)))

    def _model_inputs(self, run: Run, n_stages: int) -> list[str]:
        """Files that must exist before the model after `n_stages` stages can be read."""
        j = self.latest(run, n_stages, POLICY_KINDS)
        if j is not None:
            return [f"{stage_dir(run, j)}/train.json"]
        rp = self.papers[run.paper]
        name = rp.variants[run.variant].model
        made_here = {"toy": "pretrain.json", "package": "source.json"}.get(rp.models[name].source)
        return [f"{model_dir(name)}/{made_here}"] if made_here else []

    def _data_inputs(self, paper: str, splits: tuple[str, ...], dataset: str | None = None) -> list[str]:
        rp = self.papers[paper]
        name = dataset or rp.dataset_name
        if not (rp.datasets[name] if dataset else rp.dataset).generated:
            return []
        return [f"{data_dir(name)}/{s}.jsonl" for s in splits]

    def stage_data_dir(self, run: Run, i: int) -> str | None:
        """Where stage `i`'s generated dataset lives (None for a hub dataset)."""
        name, cfg = self.papers[run.paper].stage_dataset(self._stages(run)[i])
        return data_dir(name) if cfg.generated else None

    def upstream(self, run: Run, i: int) -> dict[str, str]:
        """What stage `i` reads from earlier stages: `pairs` (the latest generate stage's folder, when its data
        is `generated`) and `reward_model` (the latest reward_model stage's model, when a reward needs one)."""
        from harness.rewards import REWARDS

        stage, out = self._stages(run)[i], {}
        if stage.data == GENERATED:
            out["pairs"] = stage_dir(run, self.latest(run, i, ("generate",)))
        scorers = {REWARDS.get(r.name).trained_by for r in stage.rewards if REWARDS.get(r.name).needs_trained_model}
        if scorers:  # one scorer per stage (checked): the latest stage of the kind its rewards read
            out["reward_model"] = f"{stage_dir(run, self.latest(run, i, tuple(scorers)))}/model"
        return out

    # -- per-job inputs and fingerprints (the Snakefile's input and params functions)

    def stage_inputs(self, run: Run, i: int) -> list[str]:
        stage = self._stages(run)[i]
        up = self.upstream(run, i)
        if stage.data == GENERATED:
            data = [f"{up['pairs']}/train.json"]
        else:
            splits = ("train", "pool") if stage.data == "mixture" else (stage.data,)
            data = self._data_inputs(run.paper, splits, stage.dataset)
        scorer = [f"{Path(up['reward_model']).parent}/train.json"] if "reward_model" in up else []
        return self._model_inputs(run, i) + data + scorer

    def stage_fingerprint(self, run: Run, i: int) -> str:
        rp = self.papers[run.paper]
        v = rp.variants[run.variant]
        snapshots = self.snapshot_steps(run, i)  # only when asked for: older stages keep their fingerprint
        extra = ({"snapshots": snapshots} if snapshots else {}) | self.upstream(run, i)  # only when present: as before
        return fingerprint({"stage": plain_stage(v.stages[i]), "seed": run.seed, "base": self.model_after(run, i),
                            "dataset": plain_dataset(rp.stage_dataset(v.stages[i])[1])} | extra)  # fmt: skip

    def snapshot_steps(self, run: Run, i: int) -> list[int]:
        """Steps of stage `i` whose model is saved and evaluated during training (the scale's `eval_checkpoints`)."""
        rp, stage = self.papers[run.paper], self._stages(run)[i]
        if stage.kind not in POLICY_KINDS:  # no policy to evaluate
            return []
        return evenly_spaced(int(stage.args["max_steps"]), rp.eval_checkpoints)

    def checkpoint_evals(self, run: Run) -> list[str]:
        stages = self.papers[run.paper].variants[run.variant].stages
        return [checkpoint_eval_file(run, i, s) for i in range(len(stages)) for s in self.snapshot_steps(run, i)]

    def checkpoint_eval_inputs(self, run: Run, stage: int) -> list[str]:
        return [f"{stage_dir(run, stage)}/train.json"] + self._data_inputs(run.paper, ("test",))

    def checkpoint_eval_fingerprint(self, run: Run, stage: int, step: int) -> str:
        rp = self.papers[run.paper]
        return fingerprint({"eval": plain_eval(rp.eval), "seed": run.seed, "model": snapshot_dir(run, stage, step)})

    def eval_inputs(self, run: Run) -> list[str]:
        n = len(self.papers[run.paper].variants[run.variant].stages)
        return self._model_inputs(run, n) + self._data_inputs(run.paper, ("test",))

    def eval_fingerprint(self, run: Run) -> str:
        rp = self.papers[run.paper]
        return fingerprint({"eval": plain_eval(rp.eval), "seed": run.seed, "model": self.final_model(run)})

    def track_inputs(self, run: Run) -> list[str]:
        n = len(self.papers[run.paper].variants[run.variant].stages)
        return [eval_file(run)] + [f"{stage_dir(run, i)}/train.json" for i in range(n)] + self.checkpoint_evals(run)

    def track_fingerprint(self, run: Run) -> str:
        rp = self.papers[run.paper]
        variant = to_plain(rp.variants[run.variant])
        variant["stages"] = [plain_stage(st) for st in rp.variants[run.variant].stages]
        return fingerprint({"meta": to_plain(rp.meta), "variant": variant})

    def summary_inputs(self, paper: str) -> list[str]:
        return [tracked_file(r) for r in self.runs(paper)]

    def summary_fingerprint(self, paper: str) -> str:
        rp = self.papers[paper]
        return fingerprint({"claims": [to_plain(c) for c in rp.claims], "reported": [to_plain(r) for r in rp.reported]})

    # -- what each heavy job asks of a cluster (Snakemake resources; shown by `snakemake -n`)

    def resources(self, run: Run, stage: int | None) -> dict[str, int]:
        """The train stage's (or, with stage None, the evaluation's) needs, in Snakemake units."""
        rp = self.papers[run.paper]
        r = rp.eval_resources if stage is None else rp.variants[run.variant].stages[stage].resources
        return {"nodes": r.nodes, "gpus": r.gpus_per_node * r.nodes, "cpus_per_task": r.cpus_per_task,
                "mem_mb": int(r.mem_gb * 1024), "runtime": r.time_min}  # fmt: skip

    # -- the world (toy scale)

    def toy_models(self) -> dict[str, Any]:
        return {n: m for rp in self.papers.values() for n, m in rp.models.items() if m.source == "toy"}

    def packaged_models(self) -> dict[str, Any]:
        return {n: m for rp in self.papers.values() for n, m in rp.models.items() if m.source == "package"}

    def dataset_fingerprint(self, dataset: str) -> str:
        return fingerprint(plain_dataset(load_component("datasets", dataset, self.papers_dir, "dataset")))

    def model_fingerprint(self, model: str) -> str:
        m = self.toy_models()[model]
        return fingerprint({"model": to_plain(m), "dataset": self.dataset_fingerprint(m.dataset)})
