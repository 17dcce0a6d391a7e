"""Environments for multi-turn episodes, chosen by name in a stage's `environment:` (like rewards).

An episode alternates model turns and the environment's answers. A model turn ends at the tokenizer's EOS or at one
of the environment's `stop` strings (the end of a tool call); the environment reads the turn's text and answers
with a `Turn`: an observation appended to the episode (its tokens are the environment's: masked out of the loss),
whether the episode is over, a per-turn reward, and whether the turn called a tool (validly or not). The episode
ends when the environment says so or at the stage's turn limit; then `reward()` scores it and `stats()` says what
happened (for logs and the evaluation).

A registered environment is a factory: `ENVIRONMENTS.get(name).build(**args)` returns a callable making one fresh
environment per episode. Adding one is a module in this package and its line at the bottom. One whose behaviour
follows the course of training (a curriculum) also defines `at_progress(p)`: a training stage calls it on each new
episode's environment with the share of its steps done (0 to 1); an evaluation never does. One whose steps wait on a
process (a sandboxed program) sets `slow_steps = True`: the episode loop steps a turn's environments in threads.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from harness.registry import Registry


@dataclass
class Turn:
    """The environment's answer to one model turn."""

    observation: str | None
    """Text appended after the model's turn (the environment's tokens, no loss); None: nothing."""
    done: bool
    """The episode is over (a final answer was given, or nothing more can happen)."""
    reward: float = 0.0
    """A per-turn reward, added to the episode's return (e.g. a penalty for an invalid call)."""
    tool_call: bool = False
    """The turn called a tool."""
    invalid: bool = False
    """The call could not be carried out (unknown tool, malformed arguments)."""


@runtime_checkable
class Environment(Protocol):
    stop: tuple[str, ...]
    """Strings that end a model turn besides EOS: the closing mark of a tool call."""

    def reset(self, row: dict) -> str | None:
        """Start an episode on a dataset row; text to append to the prompt before the first turn, or None."""
        ...

    def step(self, text: str) -> Turn:
        """The model's turn (decoded text, up to and including a stop string) -> the environment's answer."""
        ...

    def reward(self) -> float:
        """The episode's final reward, once it is over (by `done` or by the turn limit)."""
        ...

    def stats(self) -> dict[str, float]:
        """What the episode did, for logs and evaluation: at least `success` (0/1)."""
        ...


@dataclass(frozen=True)
class EnvironmentFactory:
    build: Callable[..., Callable[[], Environment]]
    needs_labels: bool
    """Reads the row's gold `answer` (to score the episode)."""
    reads_corpus: bool = False
    """Searches a document collection: the harness passes `corpus`, the path of the dataset's corpus file
    (`corpus.jsonl` beside a generated dataset's splits) or of a fetched corpus's index (harness/corpora.py)."""
    signature: inspect.Signature | None = None
    validate: Callable[..., object] | None = None
    """Cheap check of the arguments at config time (raises ValueError)."""

    def args_problem(self, given: dict) -> tuple[str, str] | None:
        """(argument, why) when `given` are not this factory's arguments; None when they are (`corpus` is the
        harness's when the environment reads one)."""
        from harness.registry import arguments_problem

        return arguments_problem(self.signature, given, self.validate, ("corpus",) if self.reads_corpus else ())


ENVIRONMENTS: Registry[EnvironmentFactory] = Registry("environment")


def register_environment(name: str, *, needs_labels: bool, reads_corpus: bool = False,
                         validate: Callable[..., object] | None = None):  # fmt: skip
    """Register an environment factory `(**args) -> (() -> Environment)` under `name`."""

    def add(build: Callable[..., Callable[[], Environment]]):
        ENVIRONMENTS.register(name)(
            EnvironmentFactory(build, needs_labels, reads_corpus, inspect.signature(build), validate)
        )
        return build

    return add


@dataclass
class EpisodeStats:
    """Counts over a batch of episodes, for logs (`env/...` metrics) and the evaluation's metrics."""

    episodes: int = 0
    totals: dict[str, float] = field(default_factory=dict)

    def add(self, stats: dict[str, float]) -> None:
        self.episodes += 1
        for k, v in stats.items():
            self.totals[k] = self.totals.get(k, 0.0) + float(v)

    def means(self) -> dict[str, float]:
        return {k: v / max(self.episodes, 1) for k, v in sorted(self.totals.items())}


END_OF_SEQUENCE = re.compile(r"(<eos>|</s>|<\|[a-z_]+\|>)\s*$")
"""A trailing end-of-sequence token as decoded text: the toy tokenizer's `<eos>`, `</s>`, `<|im_end|>` and its kin."""


def without_eos(text: str) -> str:
    """A turn's text without a trailing end-of-sequence token, should the decoded turn have kept it.

    >>> without_eos("red<eos>"), without_eos("46<|im_end|>\\n"), without_eos("<12+3>")
    ('red', '46', '<12+3>')
    """
    return END_OF_SEQUENCE.sub("", text)


# Registered environments (each module registers itself on import).
from harness.environments import calculator as _calculator  # noqa: E402,F401
from harness.environments import interpreter as _interpreter  # noqa: E402,F401
from harness.environments import retrieval as _retrieval  # noqa: E402,F401
