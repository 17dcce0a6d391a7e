"""Pure functions from resolved configs to runs, output paths and per-job fingerprints.

The Snakefile is a thin shell over this module. A job's fingerprint hashes exactly the configuration
that job reads; Snakemake records it as a param, so changing one value in a paper re-runs only the
jobs whose fingerprint changed (and what depends on their outputs). What a stage kind reads and makes
comes from its declaration (harness/stages/); paths from harness/layout.py.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.config.load import load_paper
from harness.config.plain import (
    fingerprint,
    plain_dataset,
    plain_eval,
    plain_meta,
    plain_model,
    plain_reported,
    plain_stage,
    to_plain,
)
from harness.config.read import load_component
from harness.config.schema import ResolvedPaper, Stage
from harness.config.selection import only_variants, select_papers
from harness.config.stage import GENERATED
from harness.hub import eval_markers, stage_markers
from harness.layout import (
    PAPERS,
    PRETRAIN_SUMMARY,
    SOURCE_FILE,
    Run,
    checkpoint_eval_file,
    data_dir,
    eval_file,
    leaderboard_file,
    model_dir,
    report_page,
    snapshot_dir,
    stage_dir,
    stage_model,
    stage_summary,
    tokenizer_dir,
    tracked_file,
)
from harness.rewards import REWARDS, models_read, suite_models
from harness.stages import STAGES, kinds, making_scorer
from harness.stages.kind import DATA, POLICY, UPSTREAM_SAMPLES, UPSTREAM_SCORER, StageJob

RESOURCE_KEYS = ("nodes", "gpus", "cpus_per_task", "mem_mb", "runtime")
"""What a heavy job asks of a cluster, in Snakemake's units (Plan.resources)."""
MADE_HERE = {"toy": PRETRAIN_SUMMARY, "package": SOURCE_FILE}
"""Model sources built under results/world/models/<name>/, by the file written last there."""


def per_job(fn: Callable) -> Callable:
    """`fn`, a function of a job's wildcards for the Snakefile, with its signature computed once.

    Snakemake inspects the signature of every input, params and resources function each time it calls
    one (several times per job); a precomputed `__signature__` makes that a lookup.
    """
    fn.__signature__ = inspect.signature(fn)
    return fn


def evenly_spaced(max_steps: int, n: int) -> list[int]:
    """`n` optimizer steps spread evenly inside (0, max_steps), the final step excluded (it is the run's own eval).

    >>> evenly_spaced(100, 3), evenly_spaced(100, 0), evenly_spaced(3, 5)
    ([25, 50, 75], [], [1, 2])
    """
    return sorted({round(max_steps * j / (n + 1)) for j in range(1, n + 1)} - {0, max_steps})


class Plan:
    """The runs of the selected papers at one scale, and what each job needs.

    Snakemake calls the per-job methods many times per job while it plans; what they derive is computed
    once per (run, stage) and kept.
    """

    def __init__(self, papers: list[str] | None, scale: str, papers_dir: Path | str = PAPERS,
                 seeds: list[int] | None = None, variants: list[str] | None = None) -> None:  # fmt: skip
        """`seeds`: run only these seeds instead of each scale's (`snakemake --config seeds=[0]`); `variants`:
        only these variants (`--config variants=[a,b]`)."""
        self.scale, self.papers_dir = scale, Path(papers_dir)
        names = papers if papers is not None else select_papers(None, self.papers_dir)
        overrides = [f"seeds=[{','.join(map(str, seeds))}]"] if seeds is not None else None
        self.papers: dict[str, ResolvedPaper] = {
            p: load_paper(p, scale, overrides=overrides, papers_dir=self.papers_dir) for p in names
        }
        if variants is not None:
            self.papers = only_variants(self.papers, variants)
        self._memo: dict[tuple, Any] = {}

    def once(self, key: tuple, compute) -> Any:
        """`compute()` the first time `key` is asked for, then its value: one plan's memo (this module's fingerprints
        and harness/reuse.py's content keys)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    # -- runs and targets

    def runs(self, paper: str) -> list[Run]:
        rp = self.papers[paper]
        return [Run(paper, self.scale, v, s) for v in rp.variants for s in rp.seeds]

    def targets(self) -> list[str]:
        return [leaderboard_file(p, self.scale) for p in self.papers]

    def report_pages(self) -> list[str]:
        return [report_page(p, self.scale) for p in self.papers]

    def run(self, paper: str, variant: str, seed: int | str) -> Run:
        return Run(paper, self.scale, variant, int(seed))

    # -- models

    def base_model(self, paper: str, variant: str) -> str:
        """Where the variant's base model is read from: a local dir (toy) or a hub id."""
        rp = self.papers[paper]
        name = rp.variants[variant].model
        return rp.models[name].hub_id if rp.models[name].source == "hub" else model_dir(name)

    def _stages(self, run: Run) -> list[Stage]:
        return self.papers[run.paper].variants[run.variant].stages

    def latest(self, run: Run, before: int, kinds: tuple[str, ...]) -> int | None:
        """Index of the last stage before `before` whose kind is one of `kinds`, or None."""
        return next((j for j in range(before - 1, -1, -1) if self._stages(run)[j].kind in kinds), None)

    def model_after(self, run: Run, n_stages: int) -> str:
        """The policy after the first `n_stages` stages (stages that make data or a scorer leave it as it was)."""
        j = self.latest(run, n_stages, kinds(makes=POLICY))
        return stage_model(run, j) if j is not None else self.base_model(run.paper, run.variant)

    def final_model(self, run: Run) -> str:
        return self.model_after(run, len(self._stages(run)))

    def _model_inputs(self, run: Run, n_stages: int) -> list[str]:
        """Files that must exist before the model after `n_stages` stages can be read."""
        j = self.latest(run, n_stages, kinds(makes=POLICY))
        if j is not None:
            return [stage_summary(run, j)]
        rp = self.papers[run.paper]
        name = rp.variants[run.variant].model
        made_here = MADE_HERE.get(rp.models[name].source)
        return [f"{model_dir(name)}/{made_here}"] if made_here else []

    def _reward_model_inputs(self, run: Run, i: int) -> list[str]:
        """Files that must exist before the models stage `i`'s rewards read (a judge) can be loaded."""
        rp = self.papers[run.paper]
        made = [(n, MADE_HERE.get(rp.models[n].source)) for n in models_read(self._stages(run)[i].rewards)]
        return [f"{model_dir(n)}/{m}" for n, m in made if m]

    def reward_models(self, run: Run, i: int) -> dict[str, str]:
        """Where each model config stage `i`'s rewards read lies: its folder here, or its hub id."""
        rp = self.papers[run.paper]
        return {n: rp.models[n].hub_id if rp.models[n].source == "hub" else model_dir(n)
                for n in models_read(self._stages(run)[i].rewards)}  # fmt: skip

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
        """What stage `i` reads from earlier stages: `pairs` (the folder of the latest stage that made samples,
        when its data is `generated`) and `reward_model` (the model folder of the latest stage that made the
        scorer its rewards read)."""
        samples, scorer = self._sources(run, i)
        return ({UPSTREAM_SAMPLES: stage_dir(run, samples)} if samples is not None else {}) | (
            {UPSTREAM_SCORER: stage_model(run, scorer)} if scorer is not None else {})  # fmt: skip

    def _sources(self, run: Run, i: int) -> tuple[int | None, int | None]:
        """(index of the stage whose samples stage `i` reads, index of the stage whose scorer its rewards read)."""
        return self.once(("sources", run, i), lambda: self._find_sources(run, i))

    def _find_sources(self, run: Run, i: int) -> tuple[int | None, int | None]:
        stage = self._stages(run)[i]
        samples = self.latest(run, i, kinds(makes=DATA)) if stage.data == GENERATED else None
        read = {REWARDS.get(r.name).reads_scorer for r in stage.rewards} - {None}
        # one scorer per stage (checked): the latest stage of a kind that makes it
        scorer = self.latest(run, i, tuple(k for r in read for k in making_scorer(r))) if read else None
        return samples, scorer

    def stage_job(self, run: Run, i: int) -> StageJob:
        """Everything stage `i` of `run` needs to run (what `harness train` hands the stage's kind)."""
        stage, data = self._stages(run)[i], self.stage_data_dir(run, i)
        _, dataset = self.papers[run.paper].stage_dataset(stage)
        return StageJob(stage=stage, model=self.model_after(run, i), dataset=dataset,
                        data_dir=data and Path(data), seed=run.seed, dir=Path(stage_dir(run, i)),
                        fingerprint=self.stage_fingerprint(run, i), snapshot_steps=self.snapshot_steps(run, i),
                        upstream=self.upstream(run, i), models=self.reward_models(run, i))  # fmt: skip

    # -- per-job inputs and fingerprints (the Snakefile's input and params functions)

    def stage_inputs(self, run: Run, i: int) -> list[str]:
        stage, (samples, scorer) = self._stages(run)[i], self._sources(run, i)
        if samples is not None:
            data = [stage_summary(run, samples)]
        else:
            splits = ("train", "pool") if stage.data == "mixture" else (stage.data,)
            data = self._data_inputs(run.paper, splits, stage.dataset)
        return (self._model_inputs(run, i) + data + ([stage_summary(run, scorer)] if scorer is not None else [])
                + self._reward_model_inputs(run, i) + self.stage_hub_inputs(run, i))  # fmt: skip

    def stage_hub_inputs(self, run: Run, i: int) -> list[str]:
        """Markers of the hub items stage `i` reads, left by `harness fetch` on the head node (harness/hub.py);
        none without hub items, so such DAGs are unchanged. Its job then reads the hub cache only."""
        stage, rp = self._stages(run)[i], self.papers[run.paper]
        dataset = None if stage.data == GENERATED else rp.stage_dataset(stage)[1]
        return stage_markers(rp, run.variant, self.model_after(run, i), dataset, models_read(stage.rewards))

    def eval_hub_inputs(self, run: Run, model: str) -> list[str]:
        """The same for an evaluation of `model` (the final model, or a snapshot saved during training)."""
        return eval_markers(self.papers[run.paper], run.variant, model)

    def _base_revision(self, run: Run, model: str) -> dict:
        """{"revision": commit} when `model` is the run's pinned hub base model (absent otherwise: as before)."""
        base = self.papers[run.paper].models[self.papers[run.paper].variants[run.variant].model]
        return {"revision": base.revision} if base.source == "hub" and model == base.hub_id and base.revision else {}

    def stage_fingerprint(self, run: Run, i: int) -> str:
        return self.once(("stage_fp", run, i), lambda: self._stage_fingerprint(run, i))

    def _stage_fingerprint(self, run: Run, i: int) -> str:
        return fingerprint(self.stage_payload(run, i))

    def stage_payload(self, run: Run, i: int) -> dict:
        """What stage `i` of `run` reads, as plain data (its fingerprint hashes this; harness.reuse its content)."""
        snapshots = self.snapshot_steps(run, i)  # only when asked for: older stages keep their fingerprint
        extra = ({"snapshots": snapshots} if snapshots else {}) | self.upstream(run, i)  # only when present: as before
        extra |= self._base_revision(run, self.model_after(run, i))
        rp = self.papers[run.paper]
        pinned = {n: rp.models[n].revision for n in models_read(self._stages(run)[i].rewards)
                  if rp.models[n].source == "hub"}  # fmt: skip
        extra |= {"reward_models": pinned} if pinned else {}  # only when present: as before
        return {"stage": self._plain_stage(run.paper, run.variant, i), "seed": run.seed, "base": self.model_after(run, i),
                "dataset": self._plain_dataset(run.paper, self._stages(run)[i])} | extra  # fmt: skip

    def _plain_stage(self, paper: str, variant: str, i: int) -> dict:
        return self.once(("plain_stage", paper, variant, i),
                          lambda: plain_stage(self.papers[paper].variants[variant].stages[i]))  # fmt: skip

    def _plain_dataset(self, paper: str, stage: Stage) -> dict:
        name, cfg = self.papers[paper].stage_dataset(stage)
        return self.once(("plain_dataset", paper, name), lambda: plain_dataset(cfg))

    def _judge_revisions(self, paper: str) -> dict:
        """{"judge_models": {name: revision}} for the hub models the suite's judges read (absent without: as before)."""
        rp = self.papers[paper]
        pinned = {n: rp.models[n].revision for n in suite_models(rp.eval) if rp.models[n].source == "hub"}
        return {"judge_models": pinned} if pinned else {}

    def _plain_eval(self, paper: str) -> dict:
        return self.once(("plain_eval", paper), lambda: plain_eval(self.papers[paper].eval))

    def snapshot_steps(self, run: Run, i: int) -> list[int]:
        """Steps of stage `i` whose model is saved and evaluated during training (the scale's `eval_checkpoints`)."""
        rp, stage = self.papers[run.paper], self._stages(run)[i]
        if STAGES.get(stage.kind).makes != POLICY:  # no policy to evaluate
            return []
        return evenly_spaced(int(stage.args["max_steps"]), rp.eval_checkpoints)

    def checkpoint_evals(self, run: Run) -> list[str]:
        n = len(self._stages(run))
        return [checkpoint_eval_file(run, i, s) for i in range(n) for s in self.snapshot_steps(run, i)]

    def checkpoint_eval_inputs(self, run: Run, stage: int) -> list[str]:
        return ([stage_summary(run, stage)] + self._data_inputs(run.paper, ("test",)) + self._judge_inputs(run.paper)
                + self.eval_hub_inputs(run, stage_model(run, stage)))  # fmt: skip

    def _judge_inputs(self, paper: str) -> list[str]:
        """Files that must exist before the models the eval suite's judges read can be loaded."""
        rp = self.papers[paper]
        made = [(n, MADE_HERE.get(rp.models[n].source)) for n in suite_models(rp.eval)]
        return [f"{model_dir(n)}/{m}" for n, m in made if m]

    def judge_models(self, paper: str) -> dict[str, str]:
        """Where each model config the eval suite's judges read lies: its folder here, or its hub id."""
        rp = self.papers[paper]
        return {n: rp.models[n].hub_id if rp.models[n].source == "hub" else model_dir(n) for n in suite_models(rp.eval)}

    def checkpoint_eval_fingerprint(self, run: Run, stage: int, step: int) -> str:
        return fingerprint(self.checkpoint_eval_payload(run, stage, step))

    def checkpoint_eval_payload(self, run: Run, stage: int, step: int) -> dict:
        return {"eval": self._plain_eval(run.paper), "seed": run.seed,
                "model": snapshot_dir(run, stage, step)} | self._judge_revisions(run.paper)  # fmt: skip

    def eval_inputs(self, run: Run) -> list[str]:
        return (self._model_inputs(run, len(self._stages(run))) + self._data_inputs(run.paper, ("test",))
                + self._judge_inputs(run.paper) + self.eval_hub_inputs(run, self.final_model(run)))  # fmt: skip

    def eval_fingerprint(self, run: Run) -> str:
        return self.once(("eval_fp", run), lambda: fingerprint(self.eval_payload(run)))

    def eval_payload(self, run: Run) -> dict:
        """What the evaluation of `run`'s final model reads, as plain data (as stage_payload)."""
        return ({"eval": self._plain_eval(run.paper), "seed": run.seed, "model": self.final_model(run)}
                | self._base_revision(run, self.final_model(run)) | self._judge_revisions(run.paper))  # fmt: skip

    def track_inputs(self, run: Run) -> list[str]:
        n = len(self._stages(run))
        return [eval_file(run)] + [stage_summary(run, i) for i in range(n)] + self.checkpoint_evals(run)

    def track_fingerprint(self, run: Run) -> str:
        return self.once(("track_fp", run.paper, run.variant), lambda: self._track_fingerprint(run))

    def _track_fingerprint(self, run: Run) -> str:
        rp = self.papers[run.paper]
        variant = to_plain(rp.variants[run.variant])
        variant["stages"] = [self._plain_stage(run.paper, run.variant, i) for i in range(len(variant["stages"]))]
        return fingerprint({"meta": plain_meta(rp.meta), "variant": variant})

    def summary_inputs(self, paper: str) -> list[str]:
        return [tracked_file(r) for r in self.runs(paper)]

    def summary_fingerprint(self, paper: str) -> str:
        rp = self.papers[paper]
        data = {"claims": [to_plain(c) for c in rp.claims], "reported": [plain_reported(r) for r in rp.reported]}
        if rp.deviations:  # shown on the leaderboard: a change re-makes it
            data["deviations"] = [to_plain(d) for d in rp.deviations]
        return fingerprint(data)

    # -- what each heavy job asks of a cluster (Snakemake resources; shown by `snakemake -n`)

    def resources(self, run: Run, stage: int | None) -> dict[str, int]:
        """The train stage's (or, with stage None, the evaluation's) needs, in Snakemake units."""
        rp = self.papers[run.paper]
        r = rp.eval_resources if stage is None else rp.variants[run.variant].stages[stage].resources
        return {"nodes": r.nodes, "gpus": r.gpus_per_node * r.nodes, "cpus_per_task": r.cpus_per_task,
                "mem_mb": int(r.mem_gb * 1024), "runtime": r.time_min}  # fmt: skip

    def rule_resources(self, train: bool) -> dict[str, int | Callable]:
        """The `resources:` of the training rule (or, with train False, the evaluation rules): per key, a number
        where every job of the plan asks the same (no function to call per job), else a function of the job."""
        asked = [self.resources(run, i) for p in self.papers for run in self.runs(p)
                 for i in (range(len(self._stages(run))) if train else [None])]  # fmt: skip
        out: dict[str, int | Callable] = {}
        for key in RESOURCE_KEYS:
            values = {a[key] for a in asked}
            if len(values) == 1:
                out[key] = values.pop()
            else:
                out[key] = per_job(lambda w, key=key: self.resources(self.run(w.paper, w.variant, w.seed),
                                                                     int(w.stage) if train else None)[key])  # fmt: skip
        return out

    # -- the world (toy scale)

    def toy_models(self) -> dict[str, Any]:
        out = {n: m for rp in self.papers.values() for n, m in rp.models.items() if m.source == "toy"}
        todo = [m.toy.init_from for m in out.values() if m.toy.init_from]
        while todo:  # the models they start from are built too
            name = todo.pop()
            if name not in out:
                out[name] = load_component("models", name, self.papers_dir, "toy.init_from")
                todo += [out[name].toy.init_from] if out[name].toy.init_from else []
        return out

    def packaged_models(self) -> dict[str, Any]:
        return {n: m for rp in self.papers.values() for n, m in rp.models.items() if m.source == "package"}

    def pretrain_inputs(self, model: str) -> list[str]:
        """What pre-training a toy model reads: its dataset's pretrain split and tokenizer, and the model it starts
        from (toy.init_from)."""
        m = self.toy_models()[model]
        init = [f"{model_dir(m.toy.init_from)}/{PRETRAIN_SUMMARY}"] if m.toy.init_from else []
        return [f"{data_dir(m.dataset)}/pretrain.jsonl", f"{tokenizer_dir(m.dataset)}/tokenizer.json"] + init

    def dataset_fingerprint(self, dataset: str) -> str:
        return fingerprint(plain_dataset(load_component("datasets", dataset, self.papers_dir, "dataset")))

    def model_fingerprint(self, model: str) -> str:
        m = self.toy_models()[model]
        init = {"init": self.model_fingerprint(m.toy.init_from)} if m.toy.init_from else {}  # only when set: as before
        return fingerprint({"model": plain_model(m), "dataset": self.dataset_fingerprint(m.dataset)} | init)
