"""Checks of configuration beyond types: names, ranges and combinations, each refusal a `ConfigError`
naming the file and the full key. harness/config/load.py calls them while loading. Registries are read
(stage kinds, rewards, objective pieces, extractors, dataset generators), never the torch code behind them.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from harness import algorithms as alg
from harness.config.components import ASK, MODEL_SOURCES, TASK_QUESTIONS, DatasetConfig, EvalConfig, ModelConfig
from harness.config.errors import ConfigError, Invalid
from harness.config.stage import GENERATED, SPLITS, DataArgs, ObjectiveConfig, StageConfig, data_args_problem
from harness.device import ENGINES
from harness.environments import ENVIRONMENTS
from harness.files import SHA256, url_problem
from harness.grader import EXTRACTORS
from harness.layout import SCORERS
from harness.registry import annotation_problem
from harness.rewards import REWARDS
from harness.stages import STAGES, kinds, making_scorer
from harness.stages.kind import DATA, SPLIT
from harness.world.generators import GENERATORS


def check_model(model: ModelConfig, file: Path) -> None:
    """A model config names a known source and the fields that source needs."""
    if model.source not in MODEL_SOURCES:
        raise ConfigError(file, "source", f"unknown source {model.source!r} (known: {', '.join(MODEL_SOURCES)})")
    needed = {"hub": ("hub_id",), "package": ("package", "file"), "toy": ("dataset",)}[model.source]
    for name in needed:
        if not getattr(model, name):
            raise ConfigError(file, name, f"a {model.source} model needs {name}")
    skill = model.toy.skill
    if skill is not None and not (len(skill) == 2 and 0 <= skill[0] <= skill[1] <= 1):
        raise ConfigError(file, "toy.skill", f"a band [low, high] of accuracies, 0 <= low <= high <= 1; got {skill}")
    for name in ("pretrain_steps", "check_every", "settle", "threads", "batch_size"):
        if getattr(model.toy, name) < 1:
            raise ConfigError(file, f"toy.{name}", f"must be at least 1, got {getattr(model.toy, name)}")
    init = model.toy.init_from
    if init is not None:
        sibling = Path(file).parent / f"{init}.yaml"
        if model.source != "toy" or init == Path(file).stem or not sibling.is_file():
            why = (
                "only a toy model starts from another"
                if model.source != "toy"
                else "a model cannot start from itself"
                if init == Path(file).stem
                else f"no model config {sibling}"
            )
            raise ConfigError(file, "toy.init_from", why)


def check_dataset(dataset: DatasetConfig, file: Path) -> None:
    """A dataset config names a known source; a generated one has a spec its generator accepts."""
    known = (*GENERATORS.names(), "hub", "url")
    if dataset.source not in known:
        raise ConfigError(file, "source", f"unknown source {dataset.source!r} (known: {', '.join(known)})")
    if dataset.source == "hub" and not dataset.hub_path:
        raise ConfigError(file, "hub_path", "a hub dataset needs hub_path")
    if dataset.source == "url":
        if not dataset.url or (problem := url_problem(dataset.url)):
            raise ConfigError(file, "url", problem if dataset.url else "a url dataset needs url (its file's address)")
        if dataset.sha256 is not None and not SHA256.fullmatch(dataset.sha256):
            raise ConfigError(file, "sha256", f"must be 64 lowercase hex digits, got {dataset.sha256!r}")
    for key in ("url", "sha256", "text_fields"):
        if dataset.source != "url" and getattr(dataset, key) is not None:
            raise ConfigError(file, key, f"only a dataset with source: url has {key} (a corpus is one file)")
    if dataset.split is not None and dataset.source != "hub":
        raise ConfigError(file, "split", "only a hub dataset has splits to choose from")
    if dataset.text_fields is not None and not dataset.text_fields:
        raise ConfigError(file, "text_fields", "name at least one column of a document's text")
    if dataset.corpus is not None:
        if not dataset.fetched:
            raise ConfigError(file, "corpus", f"a {dataset.source} dataset writes its own corpus.jsonl; only a hub or "
                              "url dataset names a corpus")  # fmt: skip
        if dataset.text_fields is not None:
            raise ConfigError(file, "corpus", "a corpus (text_fields) names no corpus of its own")
    if dataset.generated:
        generator = GENERATORS.get(dataset.source)
        try:
            generator.check(getattr(dataset, generator.spec_field))
        except ValueError as e:
            message = str(e).removeprefix(f"{generator.spec_field}: ")
            raise ConfigError(file, generator.spec_field, message) from None


def check_stage(st: StageConfig, file: Path, key: str) -> None:
    """A stage's kind, data, rewards, data_args, objective and preference loss, before its args are merged."""
    if st.kind not in STAGES:
        raise ConfigError(file, f"{key}.kind", f"unknown stage kind {st.kind!r} (known: {', '.join(STAGES.names())})")
    kind = STAGES.get(st.kind)
    if kind.reads_generated and st.data != GENERATED:
        raise ConfigError(
            file, f"{key}.data", f"a {st.kind} stage trains on {kind.reads}: data: {GENERATED}, not {st.data!r}"
        )
    if not kind.reads_generated and st.data not in SPLITS:
        known = ", ".join(SPLITS)
        if st.data == GENERATED:
            known += f" ({GENERATED}: {', '.join(n for n, k in STAGES.items() if k.reads_generated)} stages)"
        raise ConfigError(file, f"{key}.data", f"unknown split {st.data!r} (known: {known})")
    if kind.rewards == "required" and not st.rewards:
        raise ConfigError(file, f"{key}.rewards", f"a {st.kind} stage needs at least one {kind.rewards_role}")
    if kind.rewards == "none" and st.rewards:
        why = " (its data are labeled)" if kind.reads_generated else ""
        raise ConfigError(file, f"{key}.rewards", f"a {st.kind} stage takes no rewards{why}")
    for j, r in enumerate(st.rewards):
        if r.name not in REWARDS:
            raise ConfigError(file, f"{key}.rewards.{j}.name", REWARDS.unknown_message(r.name))
        factory = REWARDS.get(r.name)
        check_reward_args(factory, r.args, file, f"{key}.rewards.{j}.args")
        if r.gated_by is not None:
            if not kind.objective:
                raise ConfigError(file, f"{key}.rewards.{j}.gated_by", f"only GRPO stages gate a reward, not {st.kind}")
            if not 0 <= r.gated_by < len(st.rewards) or r.gated_by == j:
                others = [i for i in range(len(st.rewards)) if i != j]
                raise ConfigError(file, f"{key}.rewards.{j}.gated_by",
                                  f"the index of another reward of this stage (one of {others}), got {r.gated_by}")  # fmt: skip
            if st.rewards[r.gated_by].gated_by is not None:
                raise ConfigError(file, f"{key}.rewards.{j}.gated_by",
                                  f"reward {r.gated_by} is itself gated; a gate is an ungated reward")  # fmt: skip
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
    if not kind.reads_generated:
        problem = data_args_problem(st.data, st.data_args)
        if problem:
            raise ConfigError(file, f"{key}.data_args.{problem[0]}", problem[1])
        for name in ("lowest_likelihood", "solution_prefix"):
            if getattr(st.data_args, name) is not None and kind.makes == DATA:
                raise ConfigError(file, f"{key}.data_args.{name}", f"applied when a stage trains on its rows; a "
                                  f"{st.kind} stage samples them as drawn")  # fmt: skip
    elif st.data_args != DataArgs():
        raise ConfigError(file, f"{key}.data_args", f"a {st.kind} stage reads its data as written; no data_args")
    if kind.objective:
        _check_objective(st.objective, file, f"{key}.objective")
        if st.objective.online_filter is not None and st.data_args.paraphrase:
            raise ConfigError(file, f"{key}.objective.online_filter", "an online filter draws prompts one by one; "
                              "it cannot keep data_args.paraphrase's pairs in the same batch")  # fmt: skip
    elif st.objective != ObjectiveConfig():
        raise ConfigError(
            file, f"{key}.objective", f"only {_kinds_taking('objective')} stages take an objective, not {st.kind!r}"
        )
    if st.preference_loss is not None:
        if not kind.preference_loss:
            raise ConfigError(file, f"{key}.preference_loss",
                              f"only {_kinds_taking('preference_loss')} stages take a preference_loss, not {st.kind!r}")  # fmt: skip
        _check_piece(
            alg.PREFERENCE_LOSSES, st.preference_loss.name, st.preference_loss.args, file, f"{key}.preference_loss"
        )
    _check_environment(st, kind, file, key)
    if kind.labeled_rows and st.data != "train":
        raise ConfigError(file, f"{key}.data", f"a {st.kind} stage needs labels on every row; {st.data!r} lacks them")


def _check_environment(st: StageConfig, kind, file: Path, key: str) -> None:
    """A multi-turn kind names a registered environment with valid arguments; other kinds name none."""
    if st.environment is None:
        if kind.environment:
            raise ConfigError(file, f"{key}.environment", f"a {st.kind} stage needs an environment "
                              f"(known: {', '.join(ENVIRONMENTS.names())})")  # fmt: skip
        return
    if not kind.environment:
        raise ConfigError(file, f"{key}.environment",
                          f"only {_kinds_taking('environment')} stages take an environment, not {st.kind!r}")  # fmt: skip
    if st.environment.name not in ENVIRONMENTS:
        raise ConfigError(file, f"{key}.environment.name", ENVIRONMENTS.unknown_message(st.environment.name))
    factory = ENVIRONMENTS.get(st.environment.name)
    problem = factory.args_problem(st.environment.args)
    if problem:
        arg, why = problem
        raise ConfigError(file, f"{key}.environment.args" + (f".{arg}" if arg else ""), why)
    if st.data == "pool" and factory.needs_labels:
        raise ConfigError(file, f"{key}.environment.name",
                          f"environment {st.environment.name!r} scores with gold labels; split 'pool' has none")  # fmt: skip


def _kinds_taking(flag: str) -> str:
    return " or ".join(kinds(**{flag: True}))


def check_stage_args(kind: str, args: dict, file: Path, key: str) -> None:
    """A stage's merged hyper-parameters, by its kind's own check."""
    check = STAGES.get(kind).check_args
    if check is not None:
        try:
            check(args)
        except Invalid as e:
            raise e.at(file, key) from None


def check_reward_args(factory, given: dict, file: Path, key: str) -> None:
    """A reward's `args` are its factory's parameters (`model` is the harness's), required ones present, each of
    its annotated type, and what the factory's own `validate` accepts."""
    if found := factory.args_problem(given):
        arg, problem = found
        raise ConfigError(file, f"{key}.{arg}" if arg else key, problem)


def check_prompt_formats(variants: dict, evalc: EvalConfig, differs: str | None, file: Path, key: str,
                         stage_keys: dict[str, list[str]]) -> None:  # fmt: skip
    """A stage that reads prompts from a dataset split formats them as the evaluation does (the chat template
    used on both sides or on neither), unless the scale's `prompt_differs` says why not."""
    if differs is not None:
        return
    for name, v in variants.items():
        for i, st in enumerate(v.stages):
            if STAGES.get(st.kind).reads != SPLIT:
                continue  # its prompts come from an earlier stage's samples, formatted there
            if st.args.get("instruction") != evalc.instruction:
                raise ConfigError(file, f"{stage_keys[name][i]}.args.instruction", (
                    f"trains with instruction {st.args.get('instruction')!r} while the evaluation asks with "
                    f"{evalc.instruction!r}; set the scale's `instruction` (both take it), or say why they differ in "
                    f"{key}.prompt_differs"))  # fmt: skip
            train = bool(st.args.get("apply_chat_template", False))
            if train != evalc.apply_chat_template:
                raise ConfigError(file, f"{stage_keys[name][i]}.args.apply_chat_template", (
                    f"trains on prompts {'in' if train else 'without'} the chat template while the evaluation "
                    f"suite formats them {'with' if evalc.apply_chat_template else 'without'} it; set it as the "
                    f"evaluation does, or say why they differ in {key}.prompt_differs"))  # fmt: skip


def check_stage_order(stages: list, file: Path, keys: list[str]) -> None:
    """What a stage takes from earlier stages exists: samples or pairs from a stage that makes them (and what
    its kind checks of that stage), a trained scorer of the sort its rewards read; one scorer per stage.
    `keys`: where each stage is written in the file."""
    made_scorer: dict[str, tuple[str, str]] = {}  # scorer family (kinds that can make it) -> (kind, what it made)
    source = None  # the latest stage that made samples
    for i, st in enumerate(stages):
        kind = STAGES.get(st.kind)
        if st.data == GENERATED:
            if source is None:
                makers = " or ".join(kinds(makes=DATA))
                raise ConfigError(file, f"{keys[i]}.data", f"data: {GENERATED} needs an earlier {makers} stage")
            if kind.check_source is not None:
                try:
                    kind.check_source(st.args, source)
                except Invalid as e:
                    raise e.at(file, f"{keys[i]}.args") from None
        scorers = [(j, r.name, REWARDS.get(r.name)) for j, r in enumerate(st.rewards)]
        scorers = [(j, name, f) for j, name, f in scorers if f.needs_trained_model]
        read_from: set[tuple[str, ...]] = set()
        for j, name, f in scorers:
            where, makers = f"{keys[i]}.rewards.{j}.name", making_scorer(f.reads_scorer)
            read_from.add(makers)
            if makers not in made_scorer:
                raise ConfigError(file, where, f"reward {name!r} reads a model trained by an earlier "
                                               f"{' or '.join(makers)} stage")  # fmt: skip
            maker, made = made_scorer[makers]
            if made != f.reads_scorer:
                raise ConfigError(file, where, f"reward {name!r} reads {SCORERS[f.reads_scorer]}; the latest {maker} "
                                               f"stage makes {SCORERS[made]}")  # fmt: skip
        if len(read_from) > 1:
            read = sorted(k for makers in read_from for k in makers)
            raise ConfigError(file, f"{keys[i]}.rewards", f"rewards read models of {read} stages; one kind per stage")
        made = kind.scorer(st.args)
        if made is not None:
            made_scorer[making_scorer(made)] = (st.kind, made)
        if kind.makes == DATA:
            source = st


def check_eval(cfg: EvalConfig, file: Path) -> None:
    """Engine, extractors and sampling settings of an eval suite (names checked without importing lm-eval)."""
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
    _check_judges(cfg, file)
    if cfg.ask is not None and cfg.ask not in ASK:
        raise ConfigError(file, "ask", f"unknown way to ask {cfg.ask!r} (known: {', '.join(ASK)})")
    if cfg.ask == "question" and (unknown := [t for t in cfg.tasks if t not in TASK_QUESTIONS]):
        raise ConfigError(file, "ask", f"no known question column for task(s) {', '.join(unknown)} (known: "
                          f"{', '.join(TASK_QUESTIONS)}, harness/config/components.py TASK_QUESTIONS)")  # fmt: skip
    if cfg.n_samples > 1 and cfg.temperature == 0:
        raise ConfigError(
            file, "temperature", f"n_samples {cfg.n_samples} at temperature 0 gives {cfg.n_samples} identical answers"
        )
    if cfg.environment is not None:
        _check_eval_environment(cfg, file)
    elif cfg.dataset is not None:
        raise ConfigError(file, "dataset", "only an episode suite (environment) reads a dataset's rows; lm-eval "
                          "tasks read their own")  # fmt: skip


def _check_eval_environment(cfg: EvalConfig, file: Path) -> None:
    """An episode suite: one task name, a registered environment with valid arguments, transformers generation."""
    if len(cfg.tasks) != 1:
        raise ConfigError(file, "tasks", f"an episode suite files its metrics under one task name, got {cfg.tasks}")
    if cfg.environment.name not in ENVIRONMENTS:
        raise ConfigError(file, "environment.name", ENVIRONMENTS.unknown_message(cfg.environment.name))
    problem = ENVIRONMENTS.get(cfg.environment.name).args_problem(cfg.environment.args)
    if problem:
        raise ConfigError(file, "environment.args" + (f".{problem[0]}" if problem[0] else ""), problem[1])
    if cfg.engine == "vllm":
        raise ConfigError(file, "engine", "an episode suite samples with transformers (hf or auto); vLLM samples "
                          "episodes in training stages only so far")  # fmt: skip


def _check_judges(cfg: EvalConfig, file: Path) -> None:
    """Judges have distinct names and score each sample alone (per-sample rewards with valid arguments)."""
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
            if not f.judges_alone:
                raise ConfigError(file, f"judges.{i}.rewards.{j}.name",
                                  f"reward {r.name!r} is not a per-sample reward; a judge scores each sample alone")  # fmt: skip
            check_reward_args(f, r.args, file, f"judges.{i}.rewards.{j}.args")
            if r.gated_by is not None:
                raise ConfigError(file, f"judges.{i}.rewards.{j}.gated_by", "only GRPO stages gate a reward")


def _check_objective(o: ObjectiveConfig, file: Path, key: str) -> None:
    """Every piece named in an objective is registered (harness/algorithms/), with valid arguments."""
    _check_piece(alg.ADVANTAGES, o.advantage.name, o.advantage.args, file, f"{key}.advantage")
    _check_piece(alg.POLICY_LOSSES, o.loss.name, o.loss.args, file, f"{key}.loss")
    if o.aggregation not in alg.AGGREGATIONS:
        raise ConfigError(file, f"{key}.aggregation", alg.AGGREGATIONS.unknown_message(o.aggregation))
    for i, a in enumerate(o.aux):
        _check_piece(alg.AUX_TERMS, a.name, a.args, file, f"{key}.aux.{i}")
    if o.expert is not None:
        _check_piece(alg.EXPERT_MIXES, o.expert.name, o.expert.args, file, f"{key}.expert")
    if o.online_filter is not None:
        _check_piece(alg.ONLINE_FILTERS, o.online_filter.name, o.online_filter.args, file, f"{key}.online_filter")
        try:
            alg.ONLINE_FILTERS.get(o.online_filter.name)(**o.online_filter.args)
        except (ValueError, TypeError) as e:
            raise ConfigError(file, f"{key}.online_filter.args", str(e)) from None
    if not 0.0 < o.top_entropy_quantile <= 1.0:
        raise ConfigError(file, f"{key}.top_entropy_quantile", f"must be in (0, 1], got {o.top_entropy_quantile}")
    for i, pair in enumerate(o.masked_spans or []):
        if len(pair) != 2 or not all(isinstance(t, str) and t for t in pair):
            raise ConfigError(file, f"{key}.masked_spans.{i}", f"must be an [open, close] pair of tags, got {pair}")


SUPPLIED = ("step", "max_steps", "group_accuracy", "expert_logps", "outcome", "group_size")
"""Keyword arguments the trainer passes to a piece itself (expert mixes, outcome losses), never set in a config."""


def _check_piece(registry, name: str, given: dict, file: Path, key: str) -> None:
    """A registered piece exists, and its `args` are its keyword-only parameters with the required ones present."""
    if name not in registry:
        raise ConfigError(file, f"{key}.name", registry.unknown_message(name))
    params = {n: p for n, p in inspect.signature(registry.get(name)).parameters.items() if p.kind is p.KEYWORD_ONLY}
    for arg, value in given.items():
        if arg not in params:
            raise ConfigError(file, f"{key}.args.{arg}", f"unknown argument (known: {', '.join(params) or 'none'})")
        if arg in SUPPLIED:
            raise ConfigError(file, f"{key}.args.{arg}", "supplied by the trainer at each step, not set in a config")
        if problem := annotation_problem(value, params[arg].annotation):
            raise ConfigError(file, f"{key}.args.{arg}", problem)
    for arg, p in params.items():
        if p.default is p.empty and arg not in given and not arg.endswith("vocab_mean_logps") and arg not in SUPPLIED:
            raise ConfigError(file, f"{key}.args.{arg}", "required argument missing")
