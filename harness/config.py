"""Loading configuration: YAML merged onto the schemas of harness/schema.py, checked, resolved.

A run's configuration is merged from layers, later wins:

    configs/scales/<scale>.yaml            defaults of one scale (toy, paper)
    papers/<slug>/paper.yaml: scales.<s>   what the paper changes at that scale
    papers/<slug>/paper.yaml: variants.<v> what one variant (method) changes
    command-line dotlist overrides

Models, datasets and eval suites are named in those layers and live in configs/models/,
configs/datasets/ and configs/eval/. Every refusal (unknown key, wrong type, unknown component,
missing file) is a `ConfigError` naming the file and the key, raised before any job starts.
This module imports nothing heavy (no torch): the Snakefile calls it on every start.
"""

from __future__ import annotations

from dataclasses import is_dataclass
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from harness.checks import (
    ROOT,
    ConfigError,
    check_claims,
    check_dataset,
    check_eval,
    check_model,
    check_stage,
    check_stage_args,
    check_stage_order,
)
from harness.schema import (  # noqa: F401  (re-exported: configs are read through this module)
    ENGINES,
    GENERATED,
    LAUNCHERS,
    MODEL_SOURCES,
    POLICY_KINDS,
    SPLITS,
    STAGE_ARGS,
    ArithmeticSpec,
    Claim,
    ClusterConfig,
    DataArgs,
    DatasetConfig,
    DPOArgs,
    EvalConfig,
    GenerateArgs,
    GRPOArgs,
    JobResources,
    ModelConfig,
    ObjectiveConfig,
    PaperConfig,
    PaperMeta,
    PieceSpec,
    ReportedResult,
    ResolvedPaper,
    Resources,
    RewardModelArgs,
    RewardSpec,
    RoundsConfig,
    ScaleConfig,
    SFTArgs,
    Stage,
    StageConfig,
    ToyModelSpec,
    TrainerDefaults,
    Variant,
    VariantConfig,
)

CONFIGS = ROOT / "configs"
PAPERS = ROOT / "papers"


# ----------------------------------------------------------------------------- loading


def _merge(schema: Any, file: Path, *layers: Any, key_prefix: str = "") -> Any:
    """Merge `layers` onto a structured `schema`; a bad key or type becomes a ConfigError."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), *layers)
        OmegaConf.to_container(merged, throw_on_missing=True)
    except OmegaConfBaseException as e:
        schema_type = schema if isinstance(schema, type) else type(schema)
        inner = _locate(schema_type, OmegaConf.to_container(layers[-1]), "") if len(layers) == 1 else None
        key = ".".join(p for p in (key_prefix, inner or getattr(e, "full_key", "") or "") if p)
        raise ConfigError(file, key, _message(e)) from None
    return merged


def _message(e: OmegaConfBaseException) -> str:
    msg = str(e).splitlines()[0]
    if "is not a ListConfig" in msg:
        return "expected a list"
    return msg


def _item_schema(t: Any) -> tuple[Any, type | None]:
    """(list or dict, item dataclass) for `list[X]`, `dict[str, X]` and their Optionals, else (None, None)."""
    if get_origin(t) in (Union, UnionType):
        t = next(a for a in get_args(t) if a is not type(None))
    origin, args = get_origin(t), get_args(t)
    if origin in (list, dict) and args and is_dataclass(args[-1]):
        return origin, args[-1]
    return None, None


def _locate(schema: type, data: Any, prefix: str) -> str | None:
    """The full dotted key of the first bad entry inside a list or dict of dataclasses in `data`.

    OmegaConf reports keys inside list items relative to the item; this walks the schema to
    give `variants.gold.stages.0.foo` instead of `foo`.
    """
    if not isinstance(data, dict):
        return None
    hints = get_type_hints(schema)
    for name, value in data.items():
        container, item_type = _item_schema(hints.get(name))
        if container is list and isinstance(value, list):
            items = enumerate(value)
        elif container is dict and isinstance(value, dict):
            items = value.items()
        else:
            continue
        for k, item in items:
            path = f"{prefix}{name}.{k}"
            try:
                OmegaConf.to_container(OmegaConf.merge(OmegaConf.structured(item_type), item), throw_on_missing=True)
            except OmegaConfBaseException as e:
                return _locate(item_type, item, path + ".") or f"{path}.{getattr(e, 'full_key', '')}".rstrip(".")
    return None


def _read_yaml(file: Path) -> DictConfig:
    if not file.is_file():
        raise ConfigError(file, "", "file not found")
    try:
        cfg = OmegaConf.load(file)
    except Exception as e:  # YAML syntax errors come in several types
        raise ConfigError(file, "", f"not valid YAML: {e}") from None
    if not isinstance(cfg, DictConfig):
        raise ConfigError(file, "", "expected a mapping at the top level")
    return cfg if cfg else OmegaConf.create({})


def load_component(kind: str, name: str, referrer: Path, key: str) -> Any:
    """Load configs/<kind>/<name>.yaml onto its schema (kind: models, datasets, eval)."""
    schema = {"models": ModelConfig, "datasets": DatasetConfig, "eval": EvalConfig}[kind]
    file = CONFIGS / kind / f"{name}.yaml"
    if not file.is_file():
        known = sorted(p.stem for p in (CONFIGS / kind).glob("*.yaml"))
        raise ConfigError(referrer, key, f"no {kind} config {name!r} (known: {', '.join(known)})")
    obj = OmegaConf.to_object(_merge(schema, file, _read_yaml(file)))
    if kind == "eval":
        check_eval(obj, file)
    elif kind == "models":
        check_model(obj, file)
    else:
        check_dataset(obj, file)
    return obj


def paper_file(slug: str, papers_dir: Path = PAPERS) -> Path:
    return papers_dir / slug / "paper.yaml"


def list_papers(papers_dir: Path = PAPERS) -> list[str]:
    return sorted(p.parent.name for p in papers_dir.glob("*/paper.yaml"))


def load_paper_config(file: Path) -> PaperConfig:
    return OmegaConf.to_object(_merge(PaperConfig, file, _read_yaml(file)))


def load_paper(slug: str, scale: str, overrides: list[str] | None = None, papers_dir: Path = PAPERS) -> ResolvedPaper:
    """Resolve one paper at one scale, checking every name it uses."""
    from harness import rewards  # registry only; light

    file = paper_file(slug, papers_dir)
    paper = load_paper_config(file)
    if scale not in paper.scales:
        raise ConfigError(file, "scales", f"scale {scale!r} not defined (has: {', '.join(paper.scales)})")
    scale_file = CONFIGS / "scales" / f"{scale}.yaml"
    layers = [_read_yaml(scale_file), OmegaConf.create(paper.scales[scale] or {})]
    if overrides:
        layers.append(OmegaConf.from_dotlist(overrides))
    sc: ScaleConfig = OmegaConf.to_object(_merge(ScaleConfig, file, *layers, key_prefix=f"scales.{scale}"))

    dataset = load_component("datasets", sc.dataset, file, f"scales.{scale}.dataset")
    evalc = load_component("eval", sc.eval, file, f"scales.{scale}.eval")
    models = {sc.model: load_component("models", sc.model, file, f"scales.{scale}.model")}
    variants: dict[str, Variant] = {}
    for name in paper.variants:
        v = _resolve_variant(paper, name, sc, file, rewards.REWARDS)
        if v is None or (paper.variants[name].scales is not None and scale not in paper.variants[name].scales):
            continue
        if v.model not in models:
            models[v.model] = load_component("models", v.model, file, f"variants.{name}.model")
        variants[name] = v
    datasets = {
        st.dataset: load_component("datasets", st.dataset, file, f"variants.{v.name}.stages.{i}.dataset")
        for v in variants.values() for i, st in enumerate(v.stages) if st.dataset
    }  # fmt: skip
    check_claims(paper, file, set(paper.variants))
    if sc.eval_checkpoints < 0:
        raise ConfigError(file, f"scales.{scale}.eval_checkpoints", f"must be >= 0, got {sc.eval_checkpoints}")
    return ResolvedPaper(
        slug=slug, scale=scale, file=str(file), meta=paper.paper, seeds=list(sc.seeds),
        dataset_name=sc.dataset, dataset=dataset, eval_name=sc.eval, eval=evalc, eval_checkpoints=sc.eval_checkpoints,
        eval_resources=sc.resources.evaluate, models=models,
        variants=variants, reported=paper.reported, claims=paper.claims, datasets=datasets,
    )  # fmt: skip


def _resolve_variant(paper: PaperConfig, name: str, sc: ScaleConfig, file: Path, reward_registry) -> Variant | None:
    chain, cur = [], name
    while cur is not None:
        if cur in chain:
            raise ConfigError(file, f"variants.{name}.extends", f"cycle through {cur!r}")
        if cur not in paper.variants:
            raise ConfigError(file, f"variants.{chain[-1]}.extends", f"no variant {cur!r}")
        chain.append(cur)
        cur = paper.variants[cur].extends
    model, stages_cfg, rounds, description = sc.model, [], None, ""
    for link in reversed(chain):  # the base of the chain first
        vc = paper.variants[link]
        model = vc.model or model
        stages_cfg = vc.stages if vc.stages is not None else stages_cfg
        rounds = vc.rounds if vc.rounds is not None else rounds
        description = vc.description or description
    if rounds is not None:
        if rounds.count < 1 or not rounds.stages:
            raise ConfigError(file, f"variants.{name}.rounds", "needs count >= 1 and at least one stage")
        stages_cfg = list(stages_cfg) + list(rounds.stages) * rounds.count
    stages = []
    for i, st in enumerate(stages_cfg):
        key = f"variants.{name}.stages.{i}"
        check_stage(st, file, key, reward_registry)
        defaults = getattr(sc.trainers, st.kind)
        args = _merge(
            STAGE_ARGS[st.kind],
            file,
            OmegaConf.structured(defaults),
            OmegaConf.create(st.args),
            key_prefix=f"{key}.args",
        )
        args = OmegaConf.to_container(args)
        check_stage_args(args, file, f"{key}.args")
        res = _merge(
            Resources,
            file,
            OmegaConf.structured(sc.resources.train),
            OmegaConf.create(st.resources),
            key_prefix=f"{key}.resources",
        )
        stages.append(
            Stage(
                kind=st.kind,
                data=st.data,
                rewards=list(st.rewards),
                args=args,
                resources=OmegaConf.to_object(res),
                data_args=st.data_args,
                objective=st.objective,
                dataset=st.dataset,
                preference_loss=st.preference_loss,
            )
        )
    check_stage_order(stages, file, f"variants.{name}.stages")
    return Variant(name=name, description=description, model=model, stages=stages)


def load_cluster(name: str) -> ClusterConfig:
    """configs/cluster/<name>.yaml, checked."""
    file = CONFIGS / "cluster" / f"{name}.yaml"
    if not file.is_file():
        known = sorted(p.stem for p in (CONFIGS / "cluster").glob("*.yaml"))
        raise ConfigError(file, "", f"no cluster config {name!r} (known: {', '.join(known)})")
    cfg = OmegaConf.to_object(_merge(ClusterConfig, file, _read_yaml(file)))
    if cfg.launcher not in LAUNCHERS:
        raise ConfigError(file, "launcher", f"unknown launcher {cfg.launcher!r} (known: {', '.join(LAUNCHERS)})")
    return cfg


def to_plain(obj: Any) -> Any:
    """A resolved dataclass as plain JSON-able data (for params, hashes and logs)."""
    return OmegaConf.to_container(OmegaConf.structured(obj), resolve=True)
