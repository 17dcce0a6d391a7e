"""Typed configuration: dataclass schemas and `load_paper()`.

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

from dataclasses import dataclass, field, is_dataclass
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

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


# ----------------------------------------------------------------------------- components


@dataclass
class ToyModelSpec:
    """Architecture and pre-training budget of a tiny Llama trained from scratch on the CPU."""

    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 384
    pretrain_steps: int = 1500
    """Optimizer steps of next-token pre-training on the dataset's pretrain split: the skill knob."""
    learning_rate: float = 3e-3
    batch_size: int = 64
    seed: int = 0


@dataclass
class ModelConfig:
    """A base model (configs/models/<name>.yaml)."""

    source: str = MISSING
    """`toy`: built here by `harness world model`; `hub`: `hub_id` on the Hugging Face hub."""
    hub_id: str | None = None
    dataset: str | None = None
    """toy only: the dataset (configs/datasets/) whose pretrain split and tokenizer it uses."""
    toy: ToyModelSpec = field(default_factory=ToyModelSpec)
    description: str = ""


@dataclass
class ArithmeticSpec:
    """Synthetic arithmetic problems `a+b-c=`; difficulty grows with operands and value range."""

    min_operands: int = 2
    max_operands: int = 2
    max_value: int = 99
    operators: list[str] = field(default_factory=lambda: ["+"])
    n_train: int = 500
    """Labeled split (gold answers used as reward)."""
    n_pool: int = 500
    """Unlabeled split (answers kept on disk for analysis, never given to a label-free reward)."""
    n_test: int = 200
    """Held-out evaluation split."""
    n_pretrain: int = 8000
    """Pre-training corpus for the toy model, disjoint from the other splits."""
    seed: int = 0


@dataclass
class DatasetConfig:
    """A training dataset (configs/datasets/<name>.yaml)."""

    source: str = MISSING
    """`toy-arithmetic`: generated here; `hub`: loaded by name at paper scale."""
    hub_path: str | None = None
    hub_name: str | None = None
    prompt_field: str = "prompt"
    answer_field: str = "answer"
    arithmetic: ArithmeticSpec = field(default_factory=ArithmeticSpec)
    description: str = ""


@dataclass
class EvalConfig:
    """An evaluation suite and its sampling protocol (configs/eval/<name>.yaml)."""

    tasks: list[str] = MISSING
    """lm-eval task names: the project's own (harness/tasks/) or stock ones at paper scale."""
    n_samples: int = 8
    """Samples per question, generated once; pass@k is reported for every k <= n_samples."""
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 8
    batch_size: int = 64
    apply_chat_template: bool = False
    limit: int | None = None
    """Evaluate only the first `limit` questions of each task (None: all)."""
    description: str = ""


# ----------------------------------------------------------------------------- training


@dataclass
class RewardSpec:
    """One reward term: a registered reward function, its weight and its factory arguments."""

    name: str = MISSING
    weight: float = 1.0
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class GRPOArgs:
    """Hyper-parameters of a GRPO stage, passed to TRL's GRPOConfig under the same names."""

    learning_rate: float = 1e-6
    max_steps: int = 500
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    num_generations: int = 8
    max_completion_length: int = 1024
    temperature: float = 1.0
    beta: float = 0.0
    epsilon: float = 0.2
    epsilon_high: float | None = None
    loss_type: str = "dapo"
    scale_rewards: str = "group"
    warmup_steps: int = 0
    save_steps: int = 50
    logging_steps: int = 10


@dataclass
class SFTArgs:
    """Hyper-parameters of an SFT stage, passed to TRL's SFTConfig under the same names."""

    learning_rate: float = 1e-5
    max_steps: int = 500
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    warmup_steps: int = 0
    save_steps: int = 50
    logging_steps: int = 10


@dataclass
class TrainerDefaults:
    grpo: GRPOArgs = field(default_factory=GRPOArgs)
    sft: SFTArgs = field(default_factory=SFTArgs)


STAGE_ARGS: dict[str, type] = {"grpo": GRPOArgs, "sft": SFTArgs}
SPLITS = ("train", "pool")


@dataclass
class StageConfig:
    """One training stage of a variant."""

    kind: str = MISSING
    """Trainer kind: grpo | sft."""
    data: str = "train"
    """Dataset split: `train` (labeled) or `pool` (unlabeled; label-free rewards only)."""
    rewards: list[RewardSpec] = field(default_factory=list)
    args: dict[str, Any] = field(default_factory=dict)
    """Overrides of this stage kind's hyper-parameters (checked against GRPOArgs / SFTArgs)."""


@dataclass
class VariantConfig:
    """A method (or baseline) compared in the paper. No stages: the base model is evaluated."""

    description: str = ""
    extends: str | None = None
    """Another variant whose stages (and model) this one starts from."""
    model: str | None = None
    """A model (configs/models/) replacing the scale's default for this variant."""
    scales: list[str] | None = None
    """Scales this variant runs at (None: all the paper defines)."""
    stages: list[StageConfig] | None = None


@dataclass
class ScaleConfig:
    """What runs at one scale: defaults in configs/scales/, overridden by a paper's `scales.<s>`."""

    model: str = MISSING
    dataset: str = MISSING
    eval: str = MISSING
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    trainers: TrainerDefaults = field(default_factory=TrainerDefaults)


# ----------------------------------------------------------------------------- the paper


@dataclass
class ReportedResult:
    """A number the paper reports, with the protocol it was measured under."""

    benchmark: str = MISSING
    metric: str = MISSING
    value: float = MISSING
    variant: str = MISSING
    model: str = MISSING
    n_samples: int | None = None
    temperature: float | None = None
    source: str = MISSING
    """Where in the paper (table, figure, abstract)."""
    assumed: list[str] = field(default_factory=list)
    """Protocol fields not stated in the source, chosen by us."""


@dataclass
class Claim:
    """A checkable statement at one scale: `lhs op rhs` on `metric`, means over seeds (see report.check_claim)."""

    statement: str = MISSING
    scale: str = "toy"
    metric: str = "pass@1"
    lhs: str = MISSING
    op: str = ">"
    rhs: str = MISSING
    """A variant name, or a number."""


@dataclass
class PaperMeta:
    title: str = MISSING
    taxonomy_ids: list[int] = field(default_factory=list)
    url: str | None = None


@dataclass
class PaperConfig:
    """A paper bundle (papers/<slug>/paper.yaml): only what differs from configs/."""

    paper: PaperMeta = field(default_factory=PaperMeta)
    variants: dict[str, VariantConfig] = field(default_factory=dict)
    scales: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per-scale overrides of ScaleConfig (checked against it when resolved)."""
    reported: list[ReportedResult] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)


# ----------------------------------------------------------------------------- resolved


@dataclass
class Stage:
    kind: str
    data: str
    rewards: list[RewardSpec]
    args: dict[str, Any]
    """Full hyper-parameters: scale defaults <- paper scale <- stage overrides."""


@dataclass
class Variant:
    name: str
    description: str
    model: str
    stages: list[Stage]


@dataclass
class ResolvedPaper:
    """Everything one (paper, scale) needs, with every name checked."""

    slug: str
    scale: str
    file: str
    meta: PaperMeta
    seeds: list[int]
    dataset_name: str
    dataset: DatasetConfig
    eval_name: str
    eval: EvalConfig
    models: dict[str, ModelConfig]
    variants: dict[str, Variant]
    reported: list[ReportedResult]
    claims: list[Claim]


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
    return OmegaConf.to_object(_merge(schema, file, _read_yaml(file)))


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
        if model.source == "toy" and not model.dataset:
            raise ConfigError(CONFIGS / "models" / f"{key}.yaml", "dataset", "a toy model needs a dataset")
    _check_claims(paper, file, set(paper.variants))
    return ResolvedPaper(
        slug=slug, scale=scale, file=str(file), meta=paper.paper, seeds=list(sc.seeds),
        dataset_name=sc.dataset, dataset=dataset, eval_name=sc.eval, eval=evalc, models=models,
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
            if st.data == "pool" and reward_registry.get(r.name).needs_labels:
                raise ConfigError(
                    file, f"{key}.rewards.{j}.name", f"reward {r.name!r} needs gold labels; split 'pool' has none"
                )
        defaults = getattr(sc.trainers, st.kind)
        args = _merge(
            STAGE_ARGS[st.kind],
            file,
            OmegaConf.structured(defaults),
            OmegaConf.create(st.args),
            key_prefix=f"{key}.args",
        )
        stages.append(Stage(kind=st.kind, data=st.data, rewards=list(st.rewards), args=OmegaConf.to_container(args)))
    return Variant(name=name, description=description, model=model, stages=stages)


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
