"""Loading configuration: YAML checked against the schemas, merged, checked again as a whole, resolved.

A run's configuration is merged from layers, later wins:

    configs/scales/<scale>.yaml            defaults of one scale (toy, small-real, paper)
    papers/<slug>/paper.yaml: scales.<s>   what the paper changes at that scale
    dotlist overrides                      load_paper(..., overrides=["trainers.grpo.max_steps=3"])
    papers/<slug>/paper.yaml: variants.<v> what one variant (method) changes, stage by stage

Models, datasets and eval suites are named in those layers and live in configs/models/,
configs/datasets/ and configs/eval/. Each layer is checked on its own, so a refusal (unknown key,
wrong type, unknown component, missing file) is a `ConfigError` naming the file the mistake is in
and its full key, raised before any job starts. harness.config.read reads a file (each parsed once per
process; objects are built fresh for every use, so no caller shares another's) and a component;
harness.config.resolve resolves a scale's layers and each variant's stages; this module puts them together
and checks the whole.
This module imports nothing heavy (no torch, no OmegaConf): the Snakefile calls it on every start.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from harness.config import read, typed
from harness.config.checks import check_prompt_formats
from harness.config.claims import check_claims, check_sources
from harness.config.components import DatasetConfig, EvalConfig
from harness.config.errors import ConfigError
from harness.config.read import load_component, load_config
from harness.config.resolve import resolve_scale, resolve_variant
from harness.config.schema import LAUNCHERS, ClusterConfig, PaperConfig, ResolvedPaper, Variant
from harness.config.stage_changes import check_stage_changes, stage_names
from harness.environments import ENVIRONMENTS
from harness.host_memory import host_memory_gb
from harness.layout import PAPERS
from harness.memory import TOY_VOCAB, shape_of
from harness.rewards import REWARDS
from harness.stages import STAGES
from harness.stages.kind import DATA


def _corpora(datasets: dict[str, DatasetConfig], variants: dict[str, Variant], stage_keys: dict[str, list[str]],
             file: Path) -> dict[str, DatasetConfig]:  # fmt: skip
    """The corpora the datasets name (fetched and indexed with them), each checked to be one; a stage whose
    environment searches a corpus on a fetched dataset without one is refused."""
    out = {}
    for name, d in datasets.items():
        if d.corpus:
            where = read.CONFIGS / "datasets" / f"{name}.yaml"
            corpus = load_component("datasets", d.corpus, where, "corpus")
            if corpus.text_fields is None:
                raise ConfigError(where, "corpus", f"configs/datasets/{d.corpus}.yaml is no corpus: it has no "
                                  "text_fields (the columns of a document's text)")  # fmt: skip
            out[d.corpus] = corpus
    for v in variants.values():
        for i, st in enumerate(v.stages):
            if st.environment is None or not ENVIRONMENTS.get(st.environment.name).reads_corpus:
                continue
            name = st.dataset or next(iter(datasets))
            if datasets[name].fetched and not datasets[name].corpus:
                raise ConfigError(file, f"{stage_keys[v.name][i]}.environment",
                                  f"{st.environment.name!r} searches a corpus, and dataset {name} names none "
                                  f"(configs/datasets/{name}.yaml: corpus)")  # fmt: skip
    return out


def _check_episode_suite(evalc: EvalConfig, name: str, scale_dataset: DatasetConfig,
                         datasets: dict[str, DatasetConfig]) -> None:  # fmt: skip
    """An episode suite reads a generated test split or its own fetched `dataset`, with a corpus when it searches."""
    if evalc.environment is None:
        return
    file = read.CONFIGS / "eval" / f"{name}.yaml"
    if evalc.dataset is None:
        if not scale_dataset.generated:
            raise ConfigError(file, "dataset", "an episode suite on a fetched (hub or url) scale dataset names its "
                              "questions: a dataset config of its own")  # fmt: skip
        return
    own = datasets[evalc.dataset]
    if not own.fetched:
        raise ConfigError(file, "dataset", f"{evalc.dataset} is generated: a generated world's suite reads its test "
                          "split (no dataset)")  # fmt: skip
    if ENVIRONMENTS.get(evalc.environment.name).reads_corpus and not own.corpus:
        raise ConfigError(file, "dataset", f"{evalc.environment.name!r} searches a corpus, and dataset "
                          f"{evalc.dataset} names none (configs/datasets/{evalc.dataset}.yaml: corpus)")  # fmt: skip


def paper_file(slug: str, papers_dir: Path = PAPERS) -> Path:
    return Path(papers_dir) / slug / "paper.yaml"


def list_papers(papers_dir: Path = PAPERS) -> list[str]:
    return sorted(p.parent.name for p in Path(papers_dir).glob("*/paper.yaml"))


def load_paper_config(file: Path) -> PaperConfig:
    return load_config(PaperConfig, file)


def check_has_scales(paper: PaperConfig, file: Path) -> None:
    if not paper.scales:
        raise ConfigError(file, "scales", f"a bundle needs at least one scale (known: {', '.join(scales_known())})")
    if paper.paper.no_paper_scale is not None:
        if not paper.paper.no_paper_scale.strip():
            raise ConfigError(file, "paper.no_paper_scale", "say why the bundle has no paper scale (a theory paper)")
        if "paper" in paper.scales:
            raise ConfigError(file, "paper.no_paper_scale", "the bundle defines scales.paper; drop one of the two")


def scales_known() -> list[str]:
    return sorted(p.stem for p in (read.CONFIGS / "scales").glob("*.yaml"))


def load_paper(slug: str, scale: str, overrides: list[str] | None = None, papers_dir: Path = PAPERS) -> ResolvedPaper:
    """Resolve one paper at one scale, checking every name it uses."""
    file = paper_file(slug, papers_dir)
    if problem := typed.check_slug(slug, "paper bundle"):
        raise ConfigError(file, "", problem)
    paper = load_paper_config(file)
    check_has_scales(paper, file)
    if scale not in paper.scales:
        raise ConfigError(file, "scales", f"scale {scale!r} not defined (has: {', '.join(paper.scales)})")
    if scale not in scales_known():
        raise ConfigError(file, f"scales.{scale}", f"no scale config {scale!r} (known: {', '.join(scales_known())})")
    sc = resolve_scale(paper, scale, read.CONFIGS / "scales" / f"{scale}.yaml", file, overrides)
    key = f"scales.{scale}"
    dataset = load_component("datasets", sc.dataset, file, f"{key}.dataset")
    evalc = load_component("eval", sc.eval, file, f"{key}.eval")
    if sc.instruction is not None and evalc.instruction is None:
        evalc = dataclasses.replace(evalc, instruction=sc.instruction)
    models = {sc.model: load_component("models", sc.model, file, f"{key}.model")}
    check_stage_changes(sc.stages, stage_names(paper), file, f"{key}.stages")
    variants: dict[str, Variant] = {}
    stage_keys: dict[str, list[str]] = {}
    for name in paper.variants:
        if problem := typed.check_slug(name, "variant (it names a folder under results/runs/)"):
            raise ConfigError(file, f"variants.{name}", problem)
        v, stage_keys[name] = resolve_variant(paper, name, sc, file, scale)
        if v is None or (paper.variants[name].scales is not None and scale not in paper.variants[name].scales):
            continue
        if v.model not in models:
            models[v.model] = load_component("models", v.model, file, f"variants.{name}.model")
        variants[name] = v
    for i, judge in enumerate(evalc.judges or []):  # the models an eval suite's judges read
        for j, r in enumerate(judge.rewards):
            if REWARDS.get(r.name).reads_model and r.args["model"] not in models:
                where = f"judges.{i}.rewards.{j}.args.model"
                models[r.args["model"]] = load_component("models", r.args["model"], read.CONFIGS / "eval" / f"{sc.eval}.yaml",
                                                         where)  # fmt: skip
    for v in variants.values():  # the models rewards read (a judge's `model`), built or fetched like a base
        for i, st in enumerate(v.stages):
            for j, r in enumerate(st.rewards):
                if REWARDS.get(r.name).reads_model and r.args["model"] not in models:
                    where = f"{stage_keys[v.name][i]}.rewards.{j}.args.model"
                    models[r.args["model"]] = load_component("models", r.args["model"], file, where)
    datasets = {
        st.dataset: load_component("datasets", st.dataset, file, f"variants.{v.name}.stages.{i}.dataset")
        for v in variants.values() for i, st in enumerate(v.stages) if st.dataset is not None
    }  # fmt: skip
    if evalc.dataset is not None:
        datasets[evalc.dataset] = load_component("datasets", evalc.dataset, read.CONFIGS / "eval" / f"{sc.eval}.yaml",
                                                 "dataset")  # fmt: skip
    datasets |= _corpora({sc.dataset: dataset} | datasets, variants, stage_keys, file)
    _check_episode_suite(evalc, sc.eval, dataset, datasets)
    _derive_host_memory(variants, models, file, key)
    eval_resources = sc.resources.evaluate
    if eval_resources.mem_gb is None:
        shapes = [shape_of(models[v.model], TOY_VOCAB) for v in variants.values()]
        if None in shapes or not shapes:
            raise ConfigError(file, f"{key}.resources.evaluate.mem_gb",
                              "cannot be derived: a model config has no `architecture:`; give a number")  # fmt: skip
        largest = max(shapes, key=lambda s: s.params)
        eval_resources = dataclasses.replace(
            eval_resources, mem_gb=round(host_memory_gb(largest, None, 1, training=False)))  # fmt: skip
    check_prompt_formats(variants, evalc, sc.prompt_differs, file, key, stage_keys)
    check_claims(paper, file, set(paper.variants))
    check_sources(paper, file)
    return ResolvedPaper(
        slug=slug, scale=scale, file=str(file), meta=paper.paper, seeds=list(sc.seeds),
        dataset_name=sc.dataset, dataset=dataset, eval_name=sc.eval, eval=evalc, eval_checkpoints=sc.eval_checkpoints,
        eval_resources=eval_resources, server_resources=sc.resources.vllm_server, models=models,
        variants=variants, reported=paper.reported, claims=paper.claims, datasets=datasets,
        stage_keys={name: stage_keys[name] for name in variants},
        deviations=[d for d in paper.deviations if d.scale == scale],
    )  # fmt: skip


def _derive_host_memory(variants: dict[str, Variant], models: dict, file: Path, key: str) -> None:
    """Stages whose resources leave `mem_gb` null get the host memory their model and parallelism need."""
    for v in variants.values():
        for st in v.stages:
            if st.resources.mem_gb is not None:
                continue
            shape = shape_of(models[v.model], TOY_VOCAB)
            if shape is None:
                raise ConfigError(file, f"{key}.resources.train.mem_gb", f"cannot be derived for variant {v.name!r}: "
                                  f"model {v.model!r} has no `architecture:`; give a number")  # fmt: skip
            tasks = max(1, st.resources.gpus_per_node)
            mem = host_memory_gb(shape, st.parallel, tasks, training=STAGES.get(st.kind).makes != DATA)
            st.resources = dataclasses.replace(st.resources, mem_gb=float(round(mem)))


def load_cluster(name: str) -> ClusterConfig:
    """configs/cluster/<name>.yaml, checked."""
    file = read.CONFIGS / "cluster" / f"{name}.yaml"
    if not file.is_file():
        known = sorted(p.stem for p in (read.CONFIGS / "cluster").glob("*.yaml"))
        raise ConfigError(file, "", f"no cluster config {name!r} (known: {', '.join(known)})")
    cfg = load_config(ClusterConfig, file)
    if cfg.launcher not in LAUNCHERS:
        raise ConfigError(file, "launcher", f"unknown launcher {cfg.launcher!r} (known: {', '.join(LAUNCHERS)})")
    return cfg
