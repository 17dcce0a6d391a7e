"""Checks of configuration beyond types: names, ranges and combinations, each refusal a `ConfigError`
naming the file and the full key. harness.config calls them while loading; harness.data shares the
data_args rules. Imports nothing heavy: the registries are read, never the torch code behind them.
"""

from __future__ import annotations

from pathlib import Path

from harness.schema import (
    ENGINES,
    GENERATED,
    GENERATED_KINDS,
    GENERATED_SOURCES,
    MODEL_SOURCES,
    SPLITS,
    STAGE_ARGS,
    DataArgs,
    DatasetConfig,
    EvalConfig,
    ModelConfig,
    ObjectiveConfig,
    PaperConfig,
    StageConfig,
)

ROOT = Path(__file__).resolve().parent.parent


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


def check_model(model: ModelConfig, file: Path) -> None:
    """A model config names a known source and the fields that source needs."""
    if model.source not in MODEL_SOURCES:
        raise ConfigError(file, "source", f"unknown source {model.source!r} (known: {', '.join(MODEL_SOURCES)})")
    needed = {"hub": ("hub_id",), "package": ("package", "file"), "toy": ("dataset",)}[model.source]
    for name in needed:
        if not getattr(model, name):
            raise ConfigError(file, name, f"a {model.source} model needs {name}")


def check_dataset(dataset: DatasetConfig, file: Path) -> None:
    """A dataset config names a known source; a generated one has a spec its generator accepts."""
    known = (*GENERATED_SOURCES, "hub")
    if dataset.source not in known:
        raise ConfigError(file, "source", f"unknown source {dataset.source!r} (known: {', '.join(known)})")
    if dataset.source == "hub" and not dataset.hub_path:
        raise ConfigError(file, "hub_path", "a hub dataset needs hub_path")
    if dataset.source == "toy-arithmetic":
        from harness.toy.tasks import check_spec as check_arithmetic

        try:
            check_arithmetic(dataset.arithmetic)
        except ValueError as e:
            raise ConfigError(file, "arithmetic", str(e)) from None
    if dataset.source == "toy-word-problems":
        from harness.toy.word_problems import check_spec

        try:
            check_spec(dataset.word_problems)
        except ValueError as e:
            raise ConfigError(file, "word_problems", str(e).removeprefix("word_problems: ")) from None


def check_stage(st: StageConfig, file: Path, key: str, reward_registry) -> None:
    """A stage's kind, split, rewards, data_args and objective, before its hyper-parameters are merged."""
    if st.kind not in STAGE_ARGS:
        raise ConfigError(file, f"{key}.kind", f"unknown stage kind {st.kind!r} (known: {', '.join(STAGE_ARGS)})")
    pairs = st.kind in GENERATED_KINDS
    if pairs and st.data != GENERATED:
        what = "samples" if st.kind == "process_reward_model" else "pairs"
        raise ConfigError(
            file, f"{key}.data", f"a {st.kind} stage trains on {what}: data: {GENERATED}, not {st.data!r}"
        )
    if not pairs and st.data not in SPLITS:
        known = ", ".join(SPLITS) + (
            f" ({GENERATED}: {', '.join(GENERATED_KINDS)} stages)" if st.data == GENERATED else ""
        )
        raise ConfigError(file, f"{key}.data", f"unknown split {st.data!r} (known: {known})")
    if st.kind in ("grpo", "generate") and not st.rewards:
        what = "reward" if st.kind == "grpo" else "reward (the judge that labels the samples)"
        raise ConfigError(file, f"{key}.rewards", f"a {st.kind} stage needs at least one {what}")
    if pairs and st.rewards:
        raise ConfigError(file, f"{key}.rewards", f"a {st.kind} stage takes no rewards (its data are labeled)")
    for j, r in enumerate(st.rewards):
        if r.name not in reward_registry:
            raise ConfigError(file, f"{key}.rewards.{j}.name", reward_registry.unknown_message(r.name))
        factory = reward_registry.get(r.name)
        check_reward_args(factory, r.args, file, f"{key}.rewards.{j}.args")
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
    if not pairs:
        _check_data_args(st, file, key)
    elif st.data_args != DataArgs():
        raise ConfigError(file, f"{key}.data_args", f"a {st.kind} stage reads its data as written; no data_args")
    if st.kind == "grpo":
        _check_objective(st, file, f"{key}.objective")
    elif st.objective != ObjectiveConfig():
        raise ConfigError(file, f"{key}.objective", f"only grpo stages take an objective, not {st.kind!r}")
    _check_preference_loss(st, file, key)
    if st.kind == "sft" and st.data != "train":
        raise ConfigError(file, f"{key}.data", f"an sft stage needs labels on every row; {st.data!r} lacks them")


def check_reward_args(factory, given: dict, file: Path, key: str) -> None:
    """A reward's `args` are its factory's parameters (`model` is the harness's), required ones present."""
    if factory.signature is None:
        return
    params = {
        n: p for n, p in factory.signature.parameters.items() if not (n == "model" and factory.needs_trained_model)
    }
    for name in given:
        if name not in params:
            raise ConfigError(file, f"{key}.{name}", f"unknown argument (known: {', '.join(params) or 'none'})")
    for name, p in params.items():
        if p.default is p.empty and name not in given:
            raise ConfigError(file, f"{key}.{name}", "required argument missing")
    if factory.validate is not None:
        try:
            factory.validate(**given)
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(file, key, str(e)) from None


def _check_preference_loss(st: StageConfig, file: Path, key: str) -> None:
    if st.preference_loss is None:
        return
    if st.kind != "dpo":
        raise ConfigError(file, f"{key}.preference_loss", f"only dpo stages take a preference_loss, not {st.kind!r}")
    from harness.algorithms import PREFERENCE_LOSSES

    if st.preference_loss.name not in PREFERENCE_LOSSES:
        raise ConfigError(
            file, f"{key}.preference_loss.name", PREFERENCE_LOSSES.unknown_message(st.preference_loss.name)
        )
    fn = PREFERENCE_LOSSES.get(st.preference_loss.name)
    _check_piece_args(fn, st.preference_loss.args, file, f"{key}.preference_loss.args")


def check_stage_order(stages: list, file: Path, key: str) -> None:
    """What a stage takes from earlier stages exists: pairs or samples from a generate stage (with gold answers
    when its step labels need them), a trained scorer of the kind its rewards read (one reward model, or a
    mixture for the rewards that read one); one scorer kind per stage."""
    from harness.process_reward import STEP_LABELERS
    from harness.rewards import REWARDS

    kinds: list[str] = []
    generate = groups = None  # the latest generate stage; num_groups of the latest reward_model stage
    for i, st in enumerate(stages):
        if st.data == GENERATED and generate is None:
            raise ConfigError(file, f"{key}.{i}.data", f"data: {GENERATED} needs an earlier generate stage")
        scorers = [(j, r.name, REWARDS.get(r.name)) for j, r in enumerate(st.rewards)]
        scorers = [(j, name, f) for j, name, f in scorers if f.needs_trained_model]
        for j, name, f in scorers:
            where = f"{key}.{i}.rewards.{j}.name"
            if f.trained_by not in kinds:
                raise ConfigError(
                    file, where, f"reward {name!r} reads a model trained by an earlier {f.trained_by} stage"
                )
            if f.trained_by == "reward_model" and f.needs_mixture != ((groups or 1) > 1):
                want = "a mixture (num_groups >= 2)" if f.needs_mixture else "one model (no num_groups)"
                raise ConfigError(file, where, f"reward {name!r} reads {want}; the latest reward_model stage has "
                                               f"num_groups {groups}")  # fmt: skip
        if len({f.trained_by for _, _, f in scorers}) > 1:
            read = sorted({f.trained_by for _, _, f in scorers})
            raise ConfigError(file, f"{key}.{i}.rewards", f"rewards read models of {read} stages; one kind per stage")
        labeler = STEP_LABELERS.get(st.args["step_labels"]) if st.kind == "process_reward_model" else None
        if getattr(labeler, "needs_answer", False) and generate is not None and generate.data == "pool":
            raise ConfigError(file, f"{key}.{i}.args.step_labels", f"{st.args['step_labels']!r} needs gold answers; "
                              "the latest generate stage reads the unlabeled pool")  # fmt: skip
        if st.kind == "reward_model":
            groups = st.args.get("num_groups")
        if st.kind == "generate":
            generate = st
        kinds.append(st.kind)


def check_stage_args(args: dict, file: Path, key: str) -> None:
    """A stage's merged hyper-parameters: whole GRPO groups per batch, a known generation engine."""
    _check_batch(args, file, key)
    if "step_labels" in args:
        from harness.process_reward import STEP_LABELERS

        if args["step_labels"] not in STEP_LABELERS:
            raise ConfigError(file, f"{key}.step_labels", STEP_LABELERS.unknown_message(args["step_labels"]))
        if not args["step_separator"]:
            raise ConfigError(file, f"{key}.step_separator", "must not be empty")
    for name in ("num_groups", "em_iterations"):
        if args.get(name) is not None and args[name] < 1:
            raise ConfigError(file, f"{key}.{name}", f"must be >= 1, got {args[name]}")
    if args.get("generation_engine", "auto") not in ENGINES:
        raise ConfigError(file, f"{key}.generation_engine",
                          f"unknown engine {args['generation_engine']!r} (known: {', '.join(ENGINES)})")  # fmt: skip


def check_eval(cfg: EvalConfig, file: Path) -> None:
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
    _check_judges(cfg, file)
    if cfg.n_samples > 1 and cfg.temperature == 0:
        raise ConfigError(
            file, "temperature", f"n_samples {cfg.n_samples} at temperature 0 gives {cfg.n_samples} identical answers"
        )


def _check_judges(cfg: EvalConfig, file: Path) -> None:
    """Judges have distinct names and score each sample alone (per-sample rewards with valid arguments)."""
    from harness.rewards import REWARDS

    names = [j.name for j in cfg.judges or []]
    for i, judge in enumerate(cfg.judges or []):
        if judge.name in names[:i] or judge.name == "min":
            raise ConfigError(
                file, f"judges.{i}.name", f"judge name {judge.name!r} is taken (names: distinct, not 'min')"
            )
        if not judge.rewards:
            raise ConfigError(file, f"judges.{i}.rewards", "a judge needs at least one reward")
        for j, r in enumerate(judge.rewards):
            if r.name not in REWARDS:
                raise ConfigError(file, f"judges.{i}.rewards.{j}.name", REWARDS.unknown_message(r.name))
            f = REWARDS.get(r.name)
            if not f.per_sample:
                raise ConfigError(file, f"judges.{i}.rewards.{j}.name",
                                  f"reward {r.name!r} is not a per-sample reward; a judge scores each sample alone")  # fmt: skip
            check_reward_args(f, r.args, file, f"judges.{i}.rewards.{j}.args")


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
    if o.expert is not None:
        pieces.append((alg.EXPERT_MIXES, "expert.name", o.expert.name))
        args["expert.name"] = o.expert.args
    for registry, sub, name in pieces:
        if name not in registry:
            raise ConfigError(file, f"{key}.{sub}", registry.unknown_message(name))
        if sub in args:
            _check_piece_args(registry.get(name), args[sub], file, f"{key}.{sub.removesuffix('.name')}.args")
    if not 0.0 < o.top_entropy_quantile <= 1.0:
        raise ConfigError(file, f"{key}.top_entropy_quantile", f"must be in (0, 1], got {o.top_entropy_quantile}")


SUPPLIED = ("step", "max_steps", "group_accuracy", "expert_logps")
"""Keyword arguments the trainer passes to a piece itself (expert mixes), never set in a config."""


def _check_piece_args(fn, given: dict, file: Path, key: str) -> None:
    """A piece's `args` must be its keyword-only parameters, with the required ones present."""
    import inspect

    params = {n: p for n, p in inspect.signature(fn).parameters.items() if p.kind is p.KEYWORD_ONLY}
    for name in given:
        if name not in params:
            raise ConfigError(file, f"{key}.{name}", f"unknown argument (known: {', '.join(params) or 'none'})")
    for name, p in params.items():
        if p.default is p.empty and name not in given and not name.endswith("vocab_logps") and name not in SUPPLIED:
            raise ConfigError(file, f"{key}.{name}", "required argument missing")


def _check_batch(args: dict, file: Path, key: str) -> None:
    """GRPO's generation batch must hold whole groups; a global batch must be a whole number of them."""
    groups = args.get("num_generations")
    if groups is None:
        return
    batch = args["global_batch_size"] or args["per_device_train_batch_size"] * args["gradient_accumulation_steps"]
    if batch % groups:
        raise ConfigError(file, key, f"batch of {batch} completions is not a multiple of num_generations={groups}")


def check_claims(paper: PaperConfig, file: Path, variants: set[str]) -> None:
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
