"""Loading configuration: YAML checked against the schemas, merged, checked again as a whole, resolved.

A run's configuration is merged from layers, later wins:

    configs/scales/<scale>.yaml            defaults of one scale (toy, small-real, paper)
    papers/<slug>/paper.yaml: scales.<s>   what the paper changes at that scale
    dotlist overrides                      load_paper(..., overrides=["trainers.grpo.max_steps=3"])
    papers/<slug>/paper.yaml: variants.<v> what one variant (method) changes, stage by stage

Models, datasets and eval suites are named in those layers and live in configs/models/,
configs/datasets/ and configs/eval/. Each layer is checked on its own, so a refusal (unknown key,
wrong type, unknown component, missing file) is a `ConfigError` naming the file the mistake is in
and its full key, raised before any job starts. Each file is parsed once per process (objects are built
fresh for every use, so no caller shares another's).
This module imports nothing heavy (no torch, no OmegaConf): the Snakefile calls it on every start.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.config import typed
from harness.config.checks import (
    check_dataset,
    check_eval,
    check_model,
    check_prompt_formats,
    check_stage,
    check_stage_args,
    check_stage_order,
)
from harness.config.claims import check_claims, check_sources
from harness.config.components import DatasetConfig, EvalConfig, ModelConfig
from harness.config.errors import ConfigError, Invalid
from harness.config.parallel import ParallelConfig
from harness.config.parallel import check as check_parallel
from harness.config.plain import to_plain
from harness.config.schema import (
    LAUNCHERS,
    ClusterConfig,
    PaperConfig,
    ResolvedPaper,
    Resources,
    ScaleConfig,
    Stage,
    Variant,
)
from harness.config.stage import RewardSpec, StageConfig
from harness.config.stage_changes import check_stage_changes, scale_stage, stage_change, stage_names
from harness.environments import ENVIRONMENTS
from harness.layout import CONFIGS, PAPERS
from harness.memory import TOY_VOCAB, host_memory_gb, shape_of
from harness.rewards import REWARDS
from harness.stages import STAGES
from harness.stages.kind import DATA, SPLIT, StageKind
from harness.stages.trl_fields import check_extra

COMPONENTS: dict[str, tuple[type, Callable]] = {
    "models": (ModelConfig, check_model),
    "datasets": (DatasetConfig, check_dataset),
    "eval": (EvalConfig, check_eval),
}
"""configs/<kind>/ holds configs of these schemas, each checked by its function once built."""

_PARSED: dict[tuple[str, str], dict] = {}


def _read(file: Path) -> dict:
    """`file` as plain data, parsed once per content (Snakemake's start reads a scale or a model many times)."""
    if not file.is_file():
        raise ConfigError(file, "", "file not found")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(file, "", f"not UTF-8 text: {e}") from None
    key = (str(file), text)
    if key not in _PARSED:
        _PARSED[key] = typed.read_yaml(file, text)
    return _PARSED[key]


def _load(schema: type, file: Path, check: Callable | None = None) -> Any:
    """`file` built onto `schema` (a fresh object every time) and checked."""
    try:
        obj = typed.build(schema, _read(file))
    except Invalid as e:
        raise e.at(file, "") from None
    if check is not None:
        check(obj, file)
    return obj


def _corpora(datasets: dict[str, DatasetConfig], variants: dict[str, Variant], stage_keys: dict[str, list[str]],
             file: Path) -> dict[str, DatasetConfig]:  # fmt: skip
    """The corpora the datasets name (fetched and indexed with them), each checked to be one; a stage whose
    environment searches a corpus on a fetched dataset without one is refused."""
    out = {}
    for name, d in datasets.items():
        if d.corpus:
            where = CONFIGS / "datasets" / f"{name}.yaml"
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
    file = CONFIGS / "eval" / f"{name}.yaml"
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


def load_component(kind: str, name: str, referrer: Path, key: str) -> Any:
    """Load configs/<kind>/<name>.yaml onto its schema (kind: models, datasets, eval), checked."""
    schema, check = COMPONENTS[kind]
    if problem := typed.check_slug(name, kind.rstrip("s") + " config"):
        raise ConfigError(referrer, key, problem)  # a name is a file inside configs/<kind>/, never a path
    file = CONFIGS / kind / f"{name}.yaml"
    if not file.is_file():
        known = sorted(p.stem for p in (CONFIGS / kind).glob("*.yaml"))
        raise ConfigError(referrer, key, f"no {kind} config {name!r} (known: {', '.join(known)})")
    return _load(schema, file, check)


def paper_file(slug: str, papers_dir: Path = PAPERS) -> Path:
    return Path(papers_dir) / slug / "paper.yaml"


def list_papers(papers_dir: Path = PAPERS) -> list[str]:
    return sorted(p.parent.name for p in Path(papers_dir).glob("*/paper.yaml"))


def load_paper_config(file: Path) -> PaperConfig:
    return _load(PaperConfig, file)


def check_has_scales(paper: PaperConfig, file: Path) -> None:
    if not paper.scales:
        raise ConfigError(file, "scales", f"a bundle needs at least one scale (known: {', '.join(scales_known())})")
    if paper.paper.no_paper_scale is not None:
        if not paper.paper.no_paper_scale.strip():
            raise ConfigError(file, "paper.no_paper_scale", "say why the bundle has no paper scale (a theory paper)")
        if "paper" in paper.scales:
            raise ConfigError(file, "paper.no_paper_scale", "the bundle defines scales.paper; drop one of the two")


def scales_known() -> list[str]:
    return sorted(p.stem for p in (CONFIGS / "scales").glob("*.yaml"))


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
    sc = _resolve_scale(paper, scale, file, overrides)
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
        v, stage_keys[name] = _resolve_variant(paper, name, sc, file, scale)
        if v is None or (paper.variants[name].scales is not None and scale not in paper.variants[name].scales):
            continue
        if v.model not in models:
            models[v.model] = load_component("models", v.model, file, f"variants.{name}.model")
        variants[name] = v
    for i, judge in enumerate(evalc.judges or []):  # the models an eval suite's judges read
        for j, r in enumerate(judge.rewards):
            if REWARDS.get(r.name).reads_model and r.args["model"] not in models:
                where = f"judges.{i}.rewards.{j}.args.model"
                models[r.args["model"]] = load_component("models", r.args["model"], CONFIGS / "eval" / f"{sc.eval}.yaml",
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
        datasets[evalc.dataset] = load_component("datasets", evalc.dataset, CONFIGS / "eval" / f"{sc.eval}.yaml",
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


def _resolve_scale(paper: PaperConfig, scale: str, file: Path, overrides: list[str] | None) -> ScaleConfig:
    """configs/scales/<scale>.yaml <- the paper's scales.<scale> <- overrides, each layer checked in its own file."""
    scale_file = CONFIGS / "scales" / f"{scale}.yaml"
    layers = [(scale_file, "", _read(scale_file)), (file, f"scales.{scale}", paper.scales[scale] or {})]
    if overrides:
        layers.append(("<command-line overrides>", "", _dotlist(overrides)))
    checked = []
    for where, prefix, data in layers:
        try:
            layer = typed.check(ScaleConfig, data)
            for kind, args in (layer.get("trainers") or {}).items():
                if kind not in STAGES:
                    raise Invalid(f"trainers.{kind}", STAGES.unknown_message(kind))
                layer["trainers"][kind] = kind_args(STAGES.get(kind), args, f"trainers.{kind}")
            if layer.get("parallel"):
                layer["parallel"] = typed.check(ParallelConfig, layer["parallel"], "parallel")
            for name, change in (layer.get("stages") or {}).items():
                layer["stages"][name] = stage_change(change, f"stages.{name}")
        except Invalid as e:
            raise e.at(where, prefix) from None
        checked.append(layer)
    try:
        return typed.build(ScaleConfig, typed.merge(*checked))
    except Invalid as e:
        raise e.at(file, f"scales.{scale}") from None


def _resolved_where_written(st: StageConfig, sc: ScaleConfig, file: Path, key: str, changed: str,
                            given: list[str]) -> Stage:  # fmt: skip
    """`_resolve_stage`; a refusal of a field the scale changed is named by the scale's key (`changed.<name>`, where
    the value is written), not the stage's."""
    try:
        return _resolve_stage(st, sc, file, key)
    except ConfigError as e:
        rest = e.key[len(key) + 1 :] if e.key.startswith(key + ".") else ""
        owner = next((n for n in reversed(given) if rest.split(".")[0] in sc.stages[n]), None)
        if owner is None:
            raise
        raise ConfigError(e.file, f"{changed}.{owner}.{rest}", e.message) from None


def _dotlist(overrides: list[str]) -> dict:
    """`a.b=value` overrides as a mapping, values parsed as YAML (OmegaConf's dotlist)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.from_dotlist(list(overrides)))


def _has_stages(paper: PaperConfig, name: str) -> bool:
    """Whether a variant trains: stages of its own or from the variants it extends."""
    while name is not None:
        if paper.variants[name].stages:
            return True
        name = paper.variants[name].extends
    return False


def _resolve_variant(paper: PaperConfig, name: str, sc: ScaleConfig, file: Path,
                     scale: str = "") -> tuple[Variant, list[str]]:  # fmt: skip
    """The variant with its stages resolved (with the scale's changes to them), and the key of each stage in the
    bundle."""
    chain, cur = [], name
    while cur is not None:
        if cur in chain:
            raise ConfigError(file, f"variants.{name}.extends", f"cycle through {cur!r}")
        if cur not in paper.variants:
            raise ConfigError(file, f"variants.{chain[-1]}.extends", f"no variant {cur!r}")
        chain.append(cur)
        cur = paper.variants[cur].extends
    for child, parent in itertools.pairwise(chain):
        if paper.variants[child].stages and _has_stages(paper, parent):
            raise ConfigError(file, f"variants.{child}.stages",
                              f"{child} extends {parent} and lists stages of its own, which replace {parent}'s: they "
                              f"are not run after them. Write every stage in {child} (YAML anchors can repeat "
                              f"{parent}'s), or drop `extends`")  # fmt: skip
    model, stages_cfg, rounds, description = sc.model, [], None, ""
    stages_of, rounds_of = name, name  # the variants whose `stages` / `rounds` these are (written there)
    for link in reversed(chain):  # the base of the chain first
        vc = paper.variants[link]
        model = vc.model or model
        if vc.stages is not None:
            stages_cfg, stages_of = vc.stages, link
        if vc.rounds is not None:
            rounds, rounds_of = vc.rounds, link
        description = vc.description or description
    changed = f"scales.{scale}.stages"
    keyed = [(f"variants.{name}.stages.{i}",
              *scale_stage(st, sc.stages, [f"{stages_of}.stages.{i}", f"{name}.stages.{i}"], file, changed))
             for i, st in enumerate(stages_cfg)]  # fmt: skip
    if rounds is not None:
        if rounds.count < 1 or not rounds.stages:
            raise ConfigError(file, f"variants.{name}.rounds", "needs count >= 1 and at least one stage")
        in_round = [scale_stage(st, sc.stages, [f"{rounds_of}.rounds.stages.{j}", f"{name}.rounds.stages.{j}"],
                                 file, changed) for j, st in enumerate(rounds.stages)]  # fmt: skip
        keyed += [(f"variants.{name}.rounds.stages.{j}", *pair) for _ in range(rounds.count)
                  for j, pair in enumerate(in_round)]  # fmt: skip
    stages = [_resolved_where_written(st, sc, file, key, changed, given) for key, st, given in keyed]
    check_stage_order(stages, file, [key for key, _, _ in keyed])
    return Variant(name=name, description=description, model=model, stages=stages), [key for key, _, _ in keyed]


def _resolve_stage(st, sc: ScaleConfig, file: Path, key: str) -> Stage:
    """A stage with its kind's args (the kind's defaults <- the scale's trainers.<kind> <- the stage's args)
    and its resources (the scale's resources.train <- the stage's)."""
    check_stage(st, file, key)
    ds = load_component("datasets", st.dataset or sc.dataset, file, f"{key}.dataset" if st.dataset else "")
    if st.data_args.paraphrase and ds.source != "toy-arithmetic" and not ds.paraphrase_field:
        raise ConfigError(file, f"{key}.data_args.paraphrase", f"dataset {st.dataset or sc.dataset!r} ships no "
                          "rewordings (no paraphrase_field in its config): rows are reworded here in the toy arithmetic "
                          "world only")  # fmt: skip
    kind = STAGES.get(st.kind)
    try:
        merged = typed.merge(sc.trainers.get(st.kind, {}), kind_args(kind, st.args))
        typed_names = {f.name for f in dataclasses.fields(kind.args)}
        args = to_plain(typed.build(kind.args, {k: v for k, v in merged.items() if k in typed_names}))
        args |= {k: v for k, v in merged.items() if k not in typed_names}  # TRL's own fields, checked already
    except Invalid as e:
        raise e.at(file, f"{key}.args") from None
    if sc.instruction is not None and kind.reads == SPLIT and args.get("instruction") is None:
        args["instruction"] = sc.instruction  # the scale's, as the evaluation asks (check_prompt_formats)
    check_stage_args(st.kind, args, file, f"{key}.args")
    try:
        resources = typed.build(
            Resources, typed.merge(to_plain(sc.resources.train), typed.check(Resources, st.resources))
        )
    except Invalid as e:
        raise e.at(file, f"{key}.resources") from None
    parallel = None
    if sc.parallel or st.parallel:
        try:
            parallel = typed.build(ParallelConfig, typed.merge(typed.check(ParallelConfig, sc.parallel),
                                                               typed.check(ParallelConfig, st.parallel)))  # fmt: skip
            check_parallel(parallel)
        except Invalid as e:
            raise e.at(file, f"{key}.parallel") from None
    rewards = [_regraded(r, sc, file, f"{key}.rewards.{i}") for i, r in enumerate(st.rewards)]
    return Stage(kind=st.kind, data=st.data, rewards=rewards, args=args, resources=resources,
                 data_args=st.data_args, objective=st.objective, dataset=st.dataset,
                 preference_loss=st.preference_loss, parallel=parallel, environment=st.environment)  # fmt: skip


def _regraded(spec: RewardSpec, sc: ScaleConfig, file: Path, key: str) -> RewardSpec:
    """`spec` with the reward the scale grades it by instead (`ScaleConfig.rewards`), checked to take its place."""
    new = sc.rewards.get(spec.name)
    if new is None:
        return spec
    if new not in REWARDS:
        raise ConfigError(file, f"scales.rewards.{spec.name}", REWARDS.unknown_message(new))
    old_f, new_f = REWARDS.get(spec.name), REWARDS.get(new)
    if (old_f.needs_labels, old_f.per_sample) != (new_f.needs_labels, new_f.per_sample):
        raise ConfigError(file, f"scales.rewards.{spec.name}", f"{new!r} cannot stand in for {spec.name!r}: "
                          "one reads labels or groups the other does not")  # fmt: skip
    if found := new_f.args_problem(spec.args):
        raise ConfigError(file, f"{key}.args", f"as {new!r} (the scale's grader for {spec.name!r}): {found[1]}")
    return dataclasses.replace(spec, name=new)


def kind_args(kind: StageKind, data: Any, key: str = "") -> dict:
    """One layer of a stage kind's args, checked: its typed fields converted, any other key checked against
    the TRL config class the kind passes its args to (harness/stages/trl_fields.py)."""
    if not isinstance(data, dict):
        return typed.check(kind.args, data, key)
    typed_names = [f.name for f in dataclasses.fields(kind.args)]
    out = typed.check(kind.args, {k: v for k, v in data.items() if k in typed_names}, key)
    extra = {k: v for k, v in data.items() if k not in typed_names}
    try:
        return out | check_extra(kind.name, kind.trl_config, typed_names, extra)
    except Invalid as e:
        raise Invalid(".".join(p for p in (key, e.key) if p), e.message) from None


def load_cluster(name: str) -> ClusterConfig:
    """configs/cluster/<name>.yaml, checked."""
    file = CONFIGS / "cluster" / f"{name}.yaml"
    if not file.is_file():
        known = sorted(p.stem for p in (CONFIGS / "cluster").glob("*.yaml"))
        raise ConfigError(file, "", f"no cluster config {name!r} (known: {', '.join(known)})")
    cfg = _load(ClusterConfig, file)
    if cfg.launcher not in LAUNCHERS:
        raise ConfigError(file, "launcher", f"unknown launcher {cfg.launcher!r} (known: {', '.join(LAUNCHERS)})")
    return cfg
