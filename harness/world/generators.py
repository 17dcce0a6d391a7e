"""The registry of dataset generators: a dataset config's `source` names one, and its spec lives in the
config's field of the same name as the generator's spec (`arithmetic:`, `word_problems:`, `programs:`, `sql:`, `traces:`).

A generator is a module with its spec dataclass, `check_spec(spec)` (raises ValueError), `make_splits(spec)`
(rows per split, deterministic under the spec's seed) and `tokenizer_text(row)` (what the dataset's
tokenizer learns from a pretrain row). Adding one is its module plus a line below.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from harness.registry import Registry
from harness.world import arithmetic, programs, sql, traces, word_problems


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


GENERATORS: Registry[Generator] = Registry("dataset source")
GENERATORS.register("toy-arithmetic")(Generator("arithmetic", arithmetic))
GENERATORS.register("toy-word-problems")(Generator("word_problems", word_problems))
GENERATORS.register("toy-programs")(Generator("programs", programs))
GENERATORS.register("toy-sql")(Generator("sql", sql))
GENERATORS.register("toy-traces")(Generator("traces", traces))
