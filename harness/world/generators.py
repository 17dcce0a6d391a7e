"""The registry of dataset generators: a dataset config's `source` names one, and its spec lives in the
config's field of the same name as the generator's spec (`arithmetic:`, `word_problems:`, `programs:`, `sql:`,
`traces:`, `calculator:`, `retrieval:`, `verdicts:`).

A generator is a module with its spec dataclass, `check_spec(spec)` (raises ValueError), `make_splits(spec)`
(rows per split, deterministic under the spec's seed) and `tokenizer_text(row)` (what the dataset's
tokenizer learns from a pretrain row); optionally `extra_files(spec)`, more files its rows go with, {name: rows},
written as `<name>.jsonl` beside the splits (the retrieval world's `corpus`, which its environment searches), and
`ENVIRONMENT`, the name of the environment (harness/environments/) its tool demonstrations are written for, with
`STOPS`, the marks that end that environment's tool calls (the world's tokenizer keeps each a token by itself).
Adding one is its module plus a line below.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from harness.registry import Registry
from harness.world import arithmetic, calculator, programs, retrieval, sql, traces, verdicts, word_problems


@dataclass(frozen=True)
class Generator:
    spec_field: str
    """The DatasetConfig field holding this generator's spec."""
    module: ModuleType

    def check(self, spec) -> None:
        self.module.check_spec(spec)

    def make_splits(self, spec) -> dict[str, list[dict]]:
        return self.module.make_splits(spec)

    def tokenizer_text(self, row: dict) -> str:
        return self.module.tokenizer_text(row)

    @property
    def environment(self) -> str | None:
        """The environment a tool world's demonstrations are written for; None for other worlds."""
        return getattr(self.module, "ENVIRONMENT", None)

    @property
    def stops(self) -> tuple[str, ...]:
        """The marks ending that environment's tool calls (never merged into other tokens)."""
        return tuple(getattr(self.module, "STOPS", ()))

    def extra_files(self, spec) -> dict[str, list[dict]]:
        """{name: rows} of the files written beside the splits as `<name>.jsonl`; none for most generators."""
        make = getattr(self.module, "extra_files", None)
        return make(spec) if make else {}


GENERATORS: Registry[Generator] = Registry("dataset source")
GENERATORS.register("toy-arithmetic")(Generator("arithmetic", arithmetic))
GENERATORS.register("toy-word-problems")(Generator("word_problems", word_problems))
GENERATORS.register("toy-programs")(Generator("programs", programs))
GENERATORS.register("toy-sql")(Generator("sql", sql))
GENERATORS.register("toy-traces")(Generator("traces", traces))
GENERATORS.register("toy-calculator")(Generator("calculator", calculator))
GENERATORS.register("toy-retrieval")(Generator("retrieval", retrieval))
GENERATORS.register("toy-verdicts")(Generator("verdicts", verdicts))
