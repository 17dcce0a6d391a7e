"""Reward functions, chosen by name in a stage's `rewards:` list.

A registered reward is a factory: `REWARDS.get(name).build(**args)` returns a TRL reward function
`(completions, **columns) -> list[float | None]` (columns: every dataset column, e.g. `answer`, `id`,
plus TRL's `prompts`, `completion_ids`, `trainer_state`, `log_extra`, `log_metric`). None marks a
completion as unscorable: TRL turns it into NaN and its advantage into 0.

Kinds, told apart by the factory's flags: per-sample (basic.py), group-aware (group.py: scored
against the other completions of the same `id`), model-aware (model.py: scored by the policy, which
the trainer attaches as `fn.policy`), stateful (stateful.py: objects that remember earlier visits of
each `id` and checkpoint that memory with `state_dict()` / `load_state_dict()`), code-executing (code.py:
programs and queries run in `harness.sandbox`; sql.py: Text-to-SQL partial credit; trace.py: a program's execution
trace), episode (episode.py: a multi-turn episode as its environment scored it), judged (judge.py: a frozen model
named by a model config reads each completion and its verdict is the score).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from harness.registry import Registry

RewardFn = Callable[..., list[float | None]]


@dataclass(frozen=True)
class RewardFactory:
    build: Callable[..., RewardFn]
    needs_labels: bool
    """Reads the gold `answer` column; refused on the unlabeled split."""
    group_aware: bool = False
    """Depends on the other completions of the same prompt (grouped by the `id` column); wrap it in
    `across_processes` when a group can be spread over several processes."""
    partial_labels: bool = False
    """Works when some rows have answer None, as in a labeled+unlabeled mixture."""
    needs_policy: bool = False
    """Scores with the policy: the trainer sets `fn.policy` to a `PolicyScorer` before training."""
    stateful: bool = False
    """Remembers earlier visits of each `id`; the trainer checkpoints `fn.state_dict()` and restores it
    with `fn.load_state_dict(d)` on resume."""
    runs_code: bool = False
    """Executes model-written code (in harness.sandbox); the stage records its `isolation` argument in the run's
    tags."""
    reads_scorer: str | None = None
    """Scores with a model an earlier stage trained, of this sort (harness.layout.SCORERS: sequence, mixture,
    steps): the harness passes that stage's model folder as the factory's `model` argument."""
    reads_model: bool = False
    """Its `model` argument names a model config (configs/models/): the harness builds or fetches that model before the
    stage, as it does a base model, and passes the folder it lies in as the factory's `location` (judge.py)."""
    signature: inspect.Signature | None = None
    """The factory's own parameters, for checking a config's `args` before anything runs."""
    validate: Callable[..., object] | None = None
    """Cheap check of the arguments at config time (raises ValueError), for arguments with inner structure."""

    @property
    def needs_trained_model(self) -> bool:
        return self.reads_scorer is not None

    def args_problem(self, given: dict) -> tuple[str, str] | None:
        """(argument, why) when `given` are not this factory's arguments: an unknown or missing one, a value of
        the wrong type, or what `validate` says (argument ""); None when they are. `model` is the harness's when
        the reward reads a trained scorer, `location` when it reads a model config."""
        from harness.registry import arguments_problem

        supplied = ("model",) if self.needs_trained_model else ("location",) if self.reads_model else ()
        return arguments_problem(self.signature, given, self.validate, supplied)

    @property
    def judges_alone(self) -> bool:
        """Scores a response from its own text and row, perhaps with a frozen model (an eval suite's judge may)."""
        return not (self.group_aware or self.needs_policy or self.stateful or self.needs_trained_model)

    @property
    def per_sample(self) -> bool:
        """Scores each completion from its own text and row alone (no group, policy, memory or trained model)."""
        return not (
            self.group_aware or self.needs_policy or self.stateful or self.needs_trained_model or self.reads_model
        )


REWARDS: Registry[RewardFactory] = Registry("reward")


def models_read(rewards) -> list[str]:
    """The model configs a list of reward specs reads (a judge's `model`), in order, each once."""
    return list(dict.fromkeys(r.args["model"] for r in rewards if REWARDS.get(r.name).reads_model))


def suite_models(cfg) -> list[str]:
    """The model configs an eval suite's judges read (harness.config.components.EvalConfig.judges)."""
    return models_read([r for j in (cfg.judges or []) for r in j.rewards])


def weighted_sum(terms: list[tuple[float, RewardFn]], completions: list[str], **columns) -> list[float]:
    """sum_j w_j r_j(c) for each completion, every reward seeing the same columns; unscorable (None) counts 0.

    >>> weighted_sum([(1.0, lambda completions, **_: [1.0, None]), (0.5, lambda completions, **_: [2.0, 2.0])], ["a", "b"])
    [2.0, 1.0]
    """
    out = [0.0] * len(completions)
    for w, fn in terms:
        out = [t + w * (s or 0.0) for t, s in zip(out, fn(completions=completions, **columns), strict=True)]
    return out


def register_reward(
    name: str,
    *,
    needs_labels: bool,
    group_aware: bool = False,
    partial_labels: bool = False,
    needs_policy: bool = False,
    stateful: bool = False,
    runs_code: bool = False,
    reads_scorer: str | None = None,
    reads_model: bool = False,
    validate: Callable[..., object] | None = None,
):
    """Register a reward factory under `name`; the built function is named after it for logs."""

    def add(build: Callable[..., RewardFn]) -> Callable[..., RewardFn]:
        def named_build(**args) -> RewardFn:
            fn = build(**args)
            fn.__name__ = name  # also fine on a callable object: an instance attribute
            return fn

        factory = RewardFactory(
            named_build, needs_labels, group_aware, partial_labels, needs_policy, stateful, runs_code, reads_scorer,
            reads_model, inspect.signature(build), validate,
        )  # fmt: skip
        REWARDS.register(name)(factory)
        return build

    return add


@runtime_checkable
class PolicyScorer(Protocol):
    """What a model-aware reward asks of the policy."""

    def logprobs(self, contexts: list[str], targets: list[str]) -> list[list[float]]:
        """log p(target token t | context, earlier target tokens), one list per (context, target) pair."""
        ...


def across_processes(fn: RewardFn) -> AcrossProcesses:
    """Make a group-aware reward correct when a group's completions are spread over processes.

    TRL scores each process's local slice of the batch; with fewer completions per device than
    `num_generations`, a group is split and a local majority is not the group's. The wrapper gathers
    `completions` and every list kwarg as long as them (in process order), scores the whole batch on
    every process (so a stateful reward keeps the same state everywhere), and returns this process's
    slice. Other kwargs (`trainer_state`, `log_metric`) pass through; `log_extra` is given only this
    process's slice of each logged column, as TRL gathers those itself. With one process (or no
    `torch.distributed`), it just calls the reward. Wrapping twice is wrapping once.

    Attributes of the reward (`state_dict`, `policy`, ...) are read and set through the wrapper;
    the reward itself is `.inner`.

    >>> wrapped = across_processes(lambda completions, **_: [float(len(c)) for c in completions])
    >>> wrapped(["ab", "c"])
    [2.0, 1.0]
    """
    return fn if isinstance(fn, AcrossProcesses) else AcrossProcesses(fn)


class AcrossProcesses:
    """A reward scored on the batch gathered from all processes; see `across_processes`."""

    def __init__(self, fn: RewardFn) -> None:
        object.__setattr__(self, "inner", fn)
        object.__setattr__(self, "__name__", getattr(fn, "__name__", type(fn).__name__))

    def __getattr__(self, key: str):  # only reached for what the wrapper itself lacks
        if key == "inner":  # not set yet (copy, unpickling): do not recurse
            raise AttributeError(key)
        return getattr(self.inner, key)

    def __setattr__(self, key: str, value) -> None:  # e.g. the trainer's `fn.policy = scorer`
        if key == "__name__":  # the wrapper logs under the reward's name: rename both
            object.__setattr__(self, key, value)
        setattr(self.inner, key, value)

    def __call__(self, completions: list[str], **kwargs) -> list[float | None]:
        rank, world = _process_slot()
        if world == 1:
            return self.inner(completions, **kwargs)
        from accelerate.utils import gather_object

        n = len(completions)
        keys = sorted(k for k, v in kwargs.items() if isinstance(v, list) and len(v) == n)
        # one object per process: its size and columns; gather_object flattens one level
        parts = gather_object([(n, keys, completions, [kwargs[k] for k in keys])])
        if any(p[1] != keys for p in parts):
            raise ValueError(
                f"across_processes({self.__name__}): processes hold different per-completion columns "
                f"{[p[1] for p in parts]}; their local batches must have the same columns and sizes"
            )
        sizes = [p[0] for p in parts]
        if len(set(sizes)) != 1:
            raise ValueError(
                f"across_processes({self.__name__}): unequal local batch sizes {sizes} across processes; "
                "expected every process to score the same number of completions"
            )
        full = dict(kwargs)
        for j, k in enumerate(keys):
            full[k] = [x for p in parts for x in p[3][j]]
        if callable(kwargs.get("log_extra")):
            full["log_extra"] = _local_log_extra(kwargs["log_extra"], rank * n, n, n * world)
        rewards = self.inner([c for p in parts for c in p[2]], **full)
        return list(rewards[rank * n : (rank + 1) * n])


def _process_slot() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) unless torch.distributed is up.

    Checked before touching accelerate, as creating its PartialState in a plain process would fix
    the device for any Accelerator created later in that process.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return 0, 1
    from accelerate import PartialState

    state = PartialState()
    return state.process_index, state.num_processes


def _local_log_extra(log_extra: Callable, start: int, n: int, total: int) -> Callable:
    """`log_extra` that keeps this process's slice of columns logged for the whole gathered batch."""

    def log(column: str, values: list) -> None:
        log_extra(column, list(values[start : start + n]) if len(values) == total else values)

    return log


# Imported for their registrations; aliased so that `register_reward`'s flags do not shadow module names.
from harness.rewards import basic as _basic  # noqa: E402,F401
from harness.rewards import code as _code  # noqa: E402,F401
from harness.rewards import episode as _episode  # noqa: E402,F401
from harness.rewards import group as _group  # noqa: E402,F401
from harness.rewards import judge as _judge  # noqa: E402,F401
from harness.rewards import learned as _learned  # noqa: E402,F401
from harness.rewards import math as _math  # noqa: E402,F401
from harness.rewards import model as _model  # noqa: E402,F401
from harness.rewards import noisy as _noisy  # noqa: E402,F401
from harness.rewards import pairwise_judge as _pairwise_judge  # noqa: E402,F401
from harness.rewards import preference_oracle as _preference_oracle  # noqa: E402,F401
from harness.rewards import process as _process  # noqa: E402,F401
from harness.rewards import search as _search  # noqa: E402,F401
from harness.rewards import sql as _sql  # noqa: E402,F401
from harness.rewards import stateful as _stateful  # noqa: E402,F401
from harness.rewards import trace as _trace  # noqa: E402,F401
from harness.rewards import users as _users  # noqa: E402,F401
