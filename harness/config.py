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

from harness.schema import (  # noqa: F401  (re-exported: configs are read through this module)
    ENGINES,
    LAUNCHERS,
    MODEL_SOURCES,
    SPLITS,
    STAGE_ARGS,
    ArithmeticSpec,
    Claim,
    ClusterConfig,
    DataArgs,
    DatasetConfig,
    EvalConfig,
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
    RewardSpec,
    ScaleConfig,
    SFTArgs,
    Stage,
    StageConfig,
    ToyModelSpec,
    TrainerDefaults,
    Variant,
    VariantConfig,
)

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
PAPERS = ROOT / "papers"


class ConfigError(ValueError):
    """Bad configuration, with the file and the key it concerns."""

    def __init__(self, file: Path | str, key: str, message: str) -> None:
        self.file, self.key = str(file), key
        super().__init__(f"{_rel(file)}: {key or '<top level>'}: {message}")


def _rel(path: Path | str) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


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
        _check_eval(obj, file)
    return obj


def _check_eval(cfg: EvalConfig, file: Path) -> None:
    """Engine, extractors and sampling settings of an eval suite (names checked without importing lm-eval)."""
    from harness.grader import EXTRACTORS

    if cfg.engine not in ENGINES:
        raise ConfigError(file, "engine", f"unknown engine {cfg.engine!r} (known: {', '.join(ENGINES)})")
    for key, name in [("answer_extractor", cfg.answer_extractor)] + [
        (f"extractors.{t}", n) for t, n in cfg.extractors.items()
    ]:
        if name not in EXTRACTORS:
            raise ConfigError(file, key, EXTRACTORS.unknown_message(name))
    for task in cfg.extractors:
        if task not in cfg.tasks:
            raise ConfigError(file, f"extractors.{task}", f"not one of this suite's tasks ({', '.join(cfg.tasks)})")
    for key in ("n_samples", "max_new_tokens", "batch_size", "tensor_parallel_size"):
        if getattr(cfg, key) < 1:
            raise ConfigError(file, key, f"must be >= 1, got {getattr(cfg, key)}")
    if cfg.n_samples > 1 and cfg.temperature == 0:
        raise ConfigError(
            file, "temperature", f"n_samples {cfg.n_samples} at temperature 0 gives {cfg.n_samples} identical answers"
        )


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
    for key, model in models.items():
        model_file = CONFIGS / "models" / f"{key}.yaml"
        if model.source not in MODEL_SOURCES:
            raise ConfigError(
                model_file, "source", f"unknown source {model.source!r} (known: {', '.join(MODEL_SOURCES)})"
            )
        needed = {"hub": ("hub_id",), "package": ("package", "file")}.get(model.source, ())
        for field_name in needed:
            if not getattr(model, field_name):
                raise ConfigError(model_file, field_name, f"a {model.source} model needs {field_name}")
        if model.source == "toy" and not model.dataset:
            raise ConfigError(CONFIGS / "models" / f"{key}.yaml", "dataset", "a toy model needs a dataset")
    _check_claims(paper, file, set(paper.variants))
    if sc.eval_checkpoints < 0:
        raise ConfigError(file, f"scales.{scale}.eval_checkpoints", f"must be >= 0, got {sc.eval_checkpoints}")
    return ResolvedPaper(
        slug=slug, scale=scale, file=str(file), meta=paper.paper, seeds=list(sc.seeds),
        dataset_name=sc.dataset, dataset=dataset, eval_name=sc.eval, eval=evalc, eval_checkpoints=sc.eval_checkpoints,
        eval_resources=sc.resources.evaluate, models=models,
        variants=variants, reported=paper.reported, claims=paper.claims,
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
    model, stages_cfg, description = sc.model, [], ""
    for link in reversed(chain):  # the base of the chain first
        vc = paper.variants[link]
        model = vc.model or model
        stages_cfg = vc.stages if vc.stages is not None else stages_cfg
        description = vc.description or description
    stages = []
    for i, st in enumerate(stages_cfg):
        key = f"variants.{name}.stages.{i}"
        if st.kind not in STAGE_ARGS:
            raise ConfigError(file, f"{key}.kind", f"unknown trainer kind {st.kind!r} (known: {', '.join(STAGE_ARGS)})")
        if st.data not in SPLITS:
            raise ConfigError(file, f"{key}.data", f"unknown split {st.data!r} (known: {', '.join(SPLITS)})")
        if st.kind == "grpo" and not st.rewards:
            raise ConfigError(file, f"{key}.rewards", "a grpo stage needs at least one reward")
        for j, r in enumerate(st.rewards):
            if r.name not in reward_registry:
                raise ConfigError(file, f"{key}.rewards.{j}.name", reward_registry.unknown_message(r.name))
            factory = reward_registry.get(r.name)
            if st.data == "pool" and factory.needs_labels:
                raise ConfigError(
                    file, f"{key}.rewards.{j}.name", f"reward {r.name!r} needs gold labels; split 'pool' has none"
                )
            if st.data == "mixture" and factory.needs_labels and not factory.partial_labels:
                raise ConfigError(
                    file,
                    f"{key}.rewards.{j}.name",
                    f"reward {r.name!r} needs a label on every row; 'mixture' has unlabeled rows",
                )
        _check_data_args(st, file, key)
        if st.kind == "grpo":
            _check_objective(st, file, f"{key}.objective")
        elif st.objective != ObjectiveConfig():
            raise ConfigError(file, f"{key}.objective", f"only grpo stages take an objective, not {st.kind!r}")
        defaults = getattr(sc.trainers, st.kind)
        args = _merge(
            STAGE_ARGS[st.kind],
            file,
            OmegaConf.structured(defaults),
            OmegaConf.create(st.args),
            key_prefix=f"{key}.args",
        )
        if st.kind == "sft" and st.data != "train":
            raise ConfigError(file, f"{key}.data", f"an sft stage needs labels on every row; {st.data!r} lacks them")
        args = OmegaConf.to_container(args)
        _check_batch(args, file, f"{key}.args")
        if args.get("generation_engine", "auto") not in ENGINES:
            raise ConfigError(file, f"{key}.args.generation_engine",
                              f"unknown engine {args['generation_engine']!r} (known: {', '.join(ENGINES)})")  # fmt: skip
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
            )
        )
    return Variant(name=name, description=description, model=model, stages=stages)


def data_args_problem(data: str, d: DataArgs) -> tuple[str, str] | None:
    """(key under data_args, why) for data_args that cannot apply to `data`, or None.

    Shared by config validation (which names the file) and harness.data (called without one).
    """
    if not 0.0 <= d.label_noise <= 1.0:
        return "label_noise", f"must be a fraction in [0, 1], got {d.label_noise}"
    if d.label_noise and data == "pool":
        return "label_noise", "data: pool has no labels to corrupt (use train or mixture)"
    if d.lowest_likelihood is not None and not 0.0 < d.lowest_likelihood <= 1.0:
        return "lowest_likelihood", f"must be a fraction in (0, 1], got {d.lowest_likelihood}"
    if d.lowest_likelihood is not None and d.repeat > 1:
        return "lowest_likelihood", "curates distinct rows: not with repeat > 1"
    if d.lowest_likelihood is not None and data != "train":
        return "lowest_likelihood", f"needs a reference answer on every row: data: train, not {data!r}"
    if d.unlabeled is not None and data != "mixture":
        return "unlabeled", f"only for data: mixture (this stage uses {data!r})"
    for name, least in (("limit", 1), ("unlabeled", 0), ("repeat", 1)):
        value = getattr(d, name)
        if value is not None and value < least:
            return name, f"must be at least {least}, got {value}"
    return None


def _check_data_args(st: StageConfig, file: Path, key: str) -> None:
    problem = data_args_problem(st.data, st.data_args)
    if problem:
        raise ConfigError(file, f"{key}.data_args.{problem[0]}", problem[1])


def _check_objective(st: StageConfig, file: Path, key: str) -> None:
    """Every piece named in a grpo stage's objective is registered (harness/algorithms/)."""
    from harness import algorithms as alg

    o = st.objective
    pieces = [(alg.ADVANTAGES, "advantage.name", o.advantage.name), (alg.POLICY_LOSSES, "loss.name", o.loss.name),
              (alg.AGGREGATIONS, "aggregation", o.aggregation)]  # fmt: skip
    pieces += [(alg.AUX_TERMS, f"aux.{i}.name", a.name) for i, a in enumerate(o.aux)]
    args = {"advantage.name": o.advantage.args, "loss.name": o.loss.args}
    args |= {f"aux.{i}.name": a.args for i, a in enumerate(o.aux)}
    for registry, sub, name in pieces:
        if name not in registry:
            raise ConfigError(file, f"{key}.{sub}", registry.unknown_message(name))
        if sub in args:
            _check_piece_args(registry.get(name), args[sub], file, f"{key}.{sub.removesuffix('.name')}.args")
    if not 0.0 < o.top_entropy_quantile <= 1.0:
        raise ConfigError(file, f"{key}.top_entropy_quantile", f"must be in (0, 1], got {o.top_entropy_quantile}")


def _check_piece_args(fn, given: dict, file: Path, key: str) -> None:
    """A piece's `args` must be its keyword-only parameters, with the required ones present."""
    import inspect

    params = {n: p for n, p in inspect.signature(fn).parameters.items() if p.kind is p.KEYWORD_ONLY}
    for name in given:
        if name not in params:
            raise ConfigError(file, f"{key}.{name}", f"unknown argument (known: {', '.join(params) or 'none'})")
    for name, p in params.items():
        if p.default is p.empty and name not in given and not name.endswith("vocab_logps"):
            raise ConfigError(file, f"{key}.{name}", "required argument missing")


def _check_batch(args: dict, file: Path, key: str) -> None:
    """GRPO's generation batch must hold whole groups; a global batch must be a whole number of them."""
    groups = args.get("num_generations")
    if groups is None:
        return
    batch = args["global_batch_size"] or args["per_device_train_batch_size"] * args["gradient_accumulation_steps"]
    if batch % groups:
        raise ConfigError(file, key, f"batch of {batch} completions is not a multiple of num_generations={groups}")


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


def _check_claims(paper: PaperConfig, file: Path, variants: set[str]) -> None:
    for i, c in enumerate(paper.claims):
        if c.op not in (">", ">=", "<", "<="):
            raise ConfigError(file, f"claims.{i}.op", f"unknown operator {c.op!r} (known: > >= < <=)")
        for side in ("lhs", "rhs"):
            ref = getattr(c, side)
            if ref not in variants and not _is_number(ref):
                raise ConfigError(file, f"claims.{i}.{side}", f"no variant {ref!r}")
    for i, r in enumerate(paper.reported):
        if r.variant not in variants:
            raise ConfigError(file, f"reported.{i}.variant", f"no variant {r.variant!r}")


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def to_plain(obj: Any) -> Any:
    """A resolved dataclass as plain JSON-able data (for params, hashes and logs)."""
    return OmegaConf.to_container(OmegaConf.structured(obj), resolve=True)
