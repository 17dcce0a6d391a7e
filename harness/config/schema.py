"""Typed schemas of a paper bundle (papers/<slug>/paper.yaml), a scale (configs/scales/), a cluster
(configs/cluster/), and of a paper resolved at one scale.

YAML is merged onto these dataclasses by harness/config/typed.py (called from read.py and resolve.py), which
refuses unknown keys and wrong types. Docstrings under fields are the reference for bundle authors. The schemas of a stage are in
harness/config/stage.py, of models, datasets and eval suites in harness/config/components.py, of a stage
kind's hyper-parameters in the kind's own module (harness/stages/).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.config.components import DatasetConfig, EvalConfig, ModelConfig
from harness.config.parallel import ParallelConfig
from harness.config.stage import DataArgs, ObjectiveConfig, PieceSpec, RewardSpec, StageConfig
from harness.config.typed import MAX_SAMPLES, MAX_TEMPERATURE, MAX_TOKENS, MISSING, limited

# ----------------------------------------------------------------------------- resources


@dataclass
class Resources:
    """What one job needs from a cluster. Site settings (partition, account, ...) live in configs/cluster/."""

    nodes: int = limited(1, ge=1)
    gpus_per_node: int = limited(0, ge=0)
    """One process per GPU (torch distributed set up from SLURM's environment); 0: one CPU process."""
    cpus_per_task: int = limited(1, ge=1)
    mem_gb: float | None = limited(4.0, gt=0)
    """Host memory per node; null: derived from the model and the parallelism (harness/host_memory.py)."""
    time_min: int = limited(30, ge=1)
    """Time limit; a job that reaches it checkpoints, is requeued and resumes."""


@dataclass
class JobResources:
    train: Resources = field(default_factory=Resources)
    evaluate: Resources = field(default_factory=Resources)
    vllm_server: Resources | None = None
    """The vLLM server job of a GRPO stage with `vllm_mode: server` (harness/serve.py); None: one node with
    vllm_tensor_parallel_size GPUs and the train job's CPUs, memory and time."""


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
    signal_delay_s: int = limited(90, ge=0)
    """USR2 this long before the time limit: the job checkpoints and is requeued."""
    max_requeues: int = limited(5, ge=0)
    gpu_mem_gb: float = limited(80.0, gt=0)
    """Memory of one GPU of the nodes jobs land on: the budget of the memory plan (harness/memory.py)."""
    gpus_per_node: int = limited(8, ge=1)
    """GPUs of one node: a stage asking for more spans several nodes."""
    node_mem_gb: float = limited(1000.0, gt=0)
    """Host memory of one node: jobs never ask for more than this."""
    hub_cache: str | None = None
    """Where `harness fetch` puts hub models, tokenizers and datasets for compute nodes that are offline
    (a folder on the shared filesystem); None: the project's .cache/huggingface."""
    """Preemptions and time limits survived before the job counts as failed."""


LAUNCHERS = ("local", "slurm")
MAX_ROUNDS = 100
"""Rounds a variant may repeat its stages: each is a training job per seed (a bound also keeps planning fast)."""


# ----------------------------------------------------------------------------- variants and scales


@dataclass
class RoundsConfig:
    """Iterated stages (e.g. generate -> label -> train): `stages` repeated `count` times after the variant's own."""

    count: int = limited(1, ge=1, le=MAX_ROUNDS)
    stages: list[StageConfig] = MISSING


@dataclass
class VariantConfig:
    """A method (or baseline) compared in the paper. No stages: the base model is evaluated."""

    description: str = ""
    extends: str | None = None
    """Another variant whose stages, model and description this one takes; it may change the model or the scales,
    not add stages (a variant with stages of its own that extends one with stages is refused: its stages would
    replace the other's, not follow them)."""
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
    seeds: list[int] = limited(default_factory=lambda: [0, 1, 2], ge=0, nonempty=True, unique=True)
    eval_checkpoints: int = limited(0, ge=0)
    """Also evaluate this many evenly spaced checkpoints of every training stage (separate jobs),
    so a run's benchmark accuracy over training steps lands in MLflow; 0: the final model only."""
    trainers: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per stage kind, defaults of its hyper-parameters (checked against the kind's args)."""
    parallel: dict[str, Any] = field(default_factory=dict)
    """Defaults of every training stage's parallelism and memory settings (harness/config/parallel.py)."""
    resources: JobResources = field(default_factory=JobResources)
    rewards: dict[str, str] = field(default_factory=dict)
    """Rewards graded otherwise at this scale: `{exact_match: math_verify}` turns every stage's `exact_match` into
    `math_verify` (symbolic equivalence, as the papers grade), its weight and arguments kept."""
    instruction: str | None = None
    """Appended, after a blank line, to every prompt a stage reads from a dataset split and to every question the
    evaluation asks, so training and evaluation prompt alike (the papers' "put your final answer within \\boxed{}")."""
    prompt_differs: str | None = None
    """Why a stage's training prompts are formatted otherwise than the evaluation's (the chat template on one side
    only); required when they differ, and shown with the results (harness.config.checks.check_prompt_formats)."""
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    """This scale's changes to single stages, keyed by the stage's key in the bundle without `variants.`
    (`one_shot.stages.0`, `iterate.rounds.stages.1`): e.g. the paper's KL term or its exact training example at the
    paper scale only. Mappings merge into the stage's own fields, lists replace; a stage's `kind` stays."""


# ----------------------------------------------------------------------------- the paper


@dataclass
class ReportedResult:
    """A number the paper reports, with the protocol it was measured under."""

    benchmark: str = MISSING
    metric: str = MISSING
    value: float = MISSING
    """As a fraction (0.164 for 16.4%); with `over`, the gain (+24 points is 0.24)."""
    variant: str = MISSING
    over: str | None = None
    """A variant the paper reports `value` as a gain over (its base, "+24 points on MATH-500"): checked against our
    variant's mean minus that variant's, both under the same protocol; None: `value` is the number itself."""
    model: str = MISSING
    n_samples: int | None = limited(None, ge=1, le=MAX_SAMPLES)
    temperature: float | None = limited(None, ge=0, le=MAX_TEMPERATURE)
    top_p: float | None = limited(None, gt=0, le=1)
    max_new_tokens: int | None = limited(None, ge=1, le=MAX_TOKENS)
    spread: float | None = limited(None, ge=0)
    """The paper's own stated spread (std over its seeds), when it gives one."""
    tolerance: float = limited(0.01, ge=0)
    """Smallest |reproduced - reported| still counted as reproduced (seed noise widens it)."""
    scale: str = "paper"
    """The scale whose runs reproduce this number."""
    source: str = MISSING
    """Where in the paper (table, figure, abstract)."""
    assumed: list[str] = field(default_factory=list)
    """Protocol fields not stated in the source, chosen by us."""
    checkpoint: str = "unstated"
    """Which checkpoint the paper's number is of (CHECKPOINT_RULES): `final`, `best_on_validation`, `best_on_test`
    (chosen by the very benchmark reported: optimistic, flagged on the leaderboard) or `unstated`. Ours is final."""


CHECKPOINT_RULES = ("final", "best_on_validation", "best_on_test", "unstated")


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
class Deviation:
    """A setting of the paper's (or its released code's) that this bundle does not match at a scale, as data: shown
    on the leaderboard, in the report and in MLflow beside the verdicts it qualifies."""

    field: str = MISSING
    """What differs: a key of the bundle (`scales.paper.trainers.grpo.temperature`) or a name (`training example`)."""
    paper: str = MISSING
    """What the paper uses."""
    ours: str = MISSING
    """What this bundle runs instead."""
    why: str = MISSING
    """Why it cannot (yet) be matched."""
    scale: str = "paper"


@dataclass
class PaperMeta:
    title: str = MISSING
    taxonomy_ids: list[int] = field(default_factory=list)
    url: str | None = None
    no_paper_scale: str | None = None
    """Why the bundle has no paper scale: a theory paper with no models, data or benchmarks of its own to run. Every
    other bundle in papers/ defines its toy and its paper scale."""


@dataclass
class PaperConfig:
    """A paper bundle (papers/<slug>/paper.yaml): only what differs from configs/."""

    paper: PaperMeta = MISSING
    variants: dict[str, VariantConfig] = field(default_factory=dict)
    scales: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per-scale overrides of ScaleConfig (checked against it when resolved)."""
    reported: list[ReportedResult] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    """Where each setting came from, by its key in this file (`scales.paper.trainers.grpo.learning_rate: "Table 4"`,
    or the released script's URL and line); a setting without one is an assumption (`harness validate` lists them)."""
    deviations: list[Deviation] = field(default_factory=list)


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
    parallel: ParallelConfig | None = None
    """Its parallelism (the scale's `parallel:` <- the stage's); None: neither sets any (plain DDP)."""
    environment: PieceSpec | None = None
    """multiturn_grpo: the environment its episodes run in."""


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
    """Datasets that stages name instead of the scale's (`StageConfig.dataset`), and the corpora datasets name
    (`DatasetConfig.corpus`: fetched and indexed with them)."""
    stage_keys: dict[str, list[str]] = field(default_factory=dict)
    """Per variant, the key in the bundle of each of its stages (`variants.<v>.stages.<i>`, or the rounds' key)."""
    server_resources: Resources | None = None
    """The scale's resources.vllm_server (infrastructure: in no fingerprint)."""
    deviations: list[Deviation] = field(default_factory=list)
    """The bundle's deviations at this scale."""

    def stage_dataset(self, stage: Stage) -> tuple[str, DatasetConfig]:
        """The (name, config) of the dataset a stage reads."""
        return (stage.dataset, self.datasets[stage.dataset]) if stage.dataset else (self.dataset_name, self.dataset)
