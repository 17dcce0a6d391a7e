"""The memory plan: per-GPU memory of each training stage, estimated from the model's shape before anything is
submitted, and checked against the site's GPU memory (configs/cluster/<site>.yaml `gpu_mem_gb`).

What it counts, per process (one process per GPU; the CPU default is one process):
- model state: weights, gradients and AdamW's two moments, in the dtype the weights are loaded in (TRL keeps
  the optimizer state in the parameters' dtype), divided over the processes as the strategy shards them
  (ddp: none; zero2: gradients and optimizer state; fsdp / zero3: all three), less what is offloaded to the host;
  sharded strategies also hold one gathered layer (two with prefetch);
- the reference model's weights when the stage has a KL term (sharded like the policy's);
- the weights of the frozen models its rewards read (a judge, harness/rewards/judge.py), whole in every process;
- activations of one micro-batch of (prompt + completion) tokens through every layer: with gradient
  checkpointing only each layer's input is kept, plus one layer's full set during its recomputation;
- the logits of that micro-batch in float32, as TRL computes per-token log-probabilities (three copies: logits,
  log-softmax and its gradient);
- generation: vLLM's reserved share of the GPU (colocate), or with HF generate the KV cache of the generation
  batch, which is freed before the optimizer step (the peak is the larger of the two phases).
On a GPU a fixed CUDA context and allocator margin is added (GPU_OVERHEAD_GB). bench/memory.py compares this
estimate with the measured peak of live tensors on the CPU (toy model and SmolLM2-135M GRPO steps).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.config.components import ModelConfig
from harness.config.parallel import ParallelConfig, load_dtype

GiB = 1024**3
GPU_OVERHEAD_GB = 2.5
"""CUDA context, cuBLAS/NCCL workspaces and the caching allocator's fragmentation, per GPU (an assumption: the
context alone is ~0.5-1 GB; NCCL buffers and fragmentation take the rest)."""
DEFAULT_PROMPT_TOKENS = {"generated": 32, "hub": 512}
"""Prompt length assumed when a dataset does not state `prompt_tokens` (TRL no longer truncates prompts)."""
BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
VOCAB_MEAN_BLOCK = (2, 512)
"""(sequences, positions) of harness/stages/trainers/grpo.py VOCAB_MEAN_ROWS, VOCAB_MEAN_POSITIONS."""
TOKEN_TILE, VOCAB_TILE = 4096, 32768
"""The tile of TRL's chunked log-prob kernel (trl/kernels/chunked_logprob.py TOKEN_CHUNK_SIZE,
trl/trainer/utils.py _CHUNKED_LOGPROB_CHUNK_SIZE): its buffer has this shape whatever the vocabulary."""


@dataclass(frozen=True)
class Shape:
    """What the plan needs of a model (a decoder-only transformer)."""

    params: float
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    head_dim: int = 0
    """0: hidden / heads."""

    def __post_init__(self) -> None:
        if not self.head_dim:
            object.__setattr__(self, "head_dim", self.hidden // self.heads)


def llama_params(hidden: int, intermediate: int, layers: int, heads: int, kv_heads: int, vocab: int,
                 tied: bool = True) -> int:  # fmt: skip
    """Parameters of a Llama-style decoder (RMSNorm, no biases).

    >>> llama_params(576, 1536, 30, 9, 3, 49152)  # SmolLM2-135M
    134515008
    """
    kv = hidden // heads * kv_heads
    per_layer = 2 * hidden * hidden + 2 * hidden * kv + 3 * hidden * intermediate + 2 * hidden
    return vocab * hidden * (1 if tied else 2) + layers * per_layer + hidden


def shape_of(model: ModelConfig, vocab: int | None = None) -> Shape | None:
    """A model config's shape: a hub or packaged model's `architecture:`, a toy model's spec (its vocabulary from
    `vocab`, the size of its tokenizer); None where neither is known."""
    if model.architecture is not None:
        a = model.architecture
        return Shape(a.params, a.layers, a.hidden, a.intermediate, a.heads, a.kv_heads, a.vocab, a.head_dim or 0)
    if model.source == "toy" and vocab:
        t = model.toy
        params = llama_params(t.hidden_size, t.intermediate_size, t.num_layers, t.num_heads, t.num_kv_heads, vocab)
        return Shape(params, t.num_layers, t.hidden_size, t.intermediate_size, t.num_heads, t.num_kv_heads, vocab)
    return None


@dataclass
class Workload:
    """What one process of a training stage does in one step."""

    micro_batch: int
    """Sequences per forward/backward (per_device_train_batch_size)."""
    prompt_tokens: int
    completion_tokens: int
    processes: int = 1
    generation_batch: int = 0
    """Sequences generated at once by this process with HF generate (0: no generation, or vLLM)."""
    reference: bool = False
    """A frozen reference model is loaded (a KL term)."""
    judge_params: float = 0.0
    """Parameters of the frozen models the rewards read (judges), held whole by every process in the compute dtype;
    their activations for a batch of short texts are left out (small next to the policy's)."""
    vllm_share: float = 0.0
    """Fraction of the GPU vLLM reserves when colocated (0: no vLLM in this process)."""
    optimizer: bool = True
    head: str = "fused"
    """`fused`: per-token log-probabilities through TRL's chunked LM head (GRPO in TRL >= 1.16), only
    (TOKEN_TILE x VOCAB_TILE) tiles of logits alive; `vocab`: full logits (SFT, DPO); `score`: a classification
    head of a few outputs (reward models)."""
    vocab_mean: bool = False
    """The policy loss reads per-position means over the vocabulary (ROVER's value_regression): a no-grad pass
    over VOCAB_MEAN_ROWS sequences with all hidden states kept, and (rows x positions x vocabulary) logits."""
    checkpointing_default: bool = True
    """Whether the trainer checkpoints activations when `parallel.gradient_checkpointing` is unset (TRL's configs
    do; transformers' TrainingArguments does not)."""


TRAINING_PHASE = ("activations", "logits", "vocab means")
"""Parts alive during forward and backward only; generation's are freed before (the peak is the larger phase)."""


@dataclass
class Estimate:
    """Bytes per process, by part; `total` is the peak."""

    parts: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        p = self.parts
        phases = max(sum(p.get(k, 0) for k in TRAINING_PHASE), p.get("generation", 0))
        static = sum(v for k, v in p.items() if k not in (*TRAINING_PHASE, "generation"))
        return static + phases

    def line(self) -> str:
        """One line: the total and its largest parts, in GiB."""
        shown = ", ".join(f"{k} {v / GiB:.1f}" for k, v in sorted(self.parts.items(), key=lambda kv: -kv[1]) if v)
        return f"{self.total / GiB:.1f} GiB per GPU ({shown})"


def estimate(shape: Shape, work: Workload, parallel: ParallelConfig | None, on_gpu: bool,
             gpu_mem_gb: float = 80.0) -> Estimate:  # fmt: skip
    """Peak memory of one process of a training stage.

    >>> s = Shape(7.6e9, 28, 3584, 18944, 28, 4, 152064)
    >>> ddp = estimate(s, Workload(4, 512, 3072, processes=8), ParallelConfig(dtype="bfloat16"), on_gpu=True)
    >>> fsdp = estimate(s, Workload(4, 512, 3072, processes=8), ParallelConfig(strategy="fsdp", dtype="bfloat16",
    ...                 gradient_checkpointing=True), on_gpu=True)
    >>> round(ddp.parts["weights"] / GiB, 1), round(fsdp.parts["weights"] / GiB, 1)
    (14.2, 1.8)
    """
    p = parallel or ParallelConfig(dtype="float32")  # nothing set: TRL loads float32 (bf16 autocast on a GPU)
    b = BYTES[load_dtype(p, on_gpu)]  # weights, gradients, optimizer state
    c = 2 if on_gpu else b  # activations, gathered layers, logits tiles: bf16/fp16 compute on a GPU
    n = max(1, work.processes)
    shard = {"ddp": (1, 1, 1), "zero2": (1, n, n), "zero3": (n, n, n), "fsdp": (n, n, n)}[p.strategy]
    parts: dict[str, float] = {}
    if not work.optimizer:  # sampling only: vLLM holds the weights inside its share, HF generate a full copy
        parts["vllm" if work.vllm_share else "weights"] = (
            work.vllm_share * gpu_mem_gb * GiB if work.vllm_share else shape.params * c)  # fmt: skip
        kv = 2 * shape.layers * shape.kv_heads * shape.head_dim * c
        parts["generation"] = 0.0 if work.vllm_share else work.generation_batch * (
            work.prompt_tokens + work.completion_tokens) * kv  # fmt: skip
        if on_gpu:
            parts["cuda overhead"] = GPU_OVERHEAD_GB * GiB
        return Estimate(parts)
    parts["weights"] = 0.0 if p.offload_params else shape.params * b / shard[0]
    parts["gradients"] = shape.params * b / shard[1] if work.optimizer else 0.0
    parts["optimizer"] = 0.0 if (p.offload_optimizer or not work.optimizer) else 2 * shape.params * b / shard[2]
    if p.strategy in ("fsdp", "zero3"):
        per_layer = (shape.params - shape.vocab * shape.hidden) / shape.layers
        parts["gathered layers"] = 2 * per_layer * c + shape.vocab * shape.hidden * c
    if work.reference:
        parts["reference"] = 0.0 if p.offload_params else shape.params * b / shard[0]
    if work.judge_params:
        parts["judges"] = work.judge_params * c
    tokens = work.micro_batch * (work.prompt_tokens + work.completion_tokens)
    checkpointing = work.checkpointing_default if p.gradient_checkpointing is None else p.gradient_checkpointing
    parts["activations"] = activations(shape, tokens, work.micro_batch, c, checkpointing, p.attn_implementation)
    parts["logits"] = logits(shape, tokens, work, c, on_gpu)
    if work.vocab_mean:
        rows, positions = VOCAB_MEAN_BLOCK
        length = work.prompt_tokens + work.completion_tokens
        parts["vocab means"] = (
            rows * (shape.layers + 1) * length * shape.hidden * c + rows * positions * shape.vocab * 8
        )
    if work.vllm_share:
        parts["vllm"] = work.vllm_share * gpu_mem_gb * GiB
    elif work.generation_batch:
        kv = 2 * shape.layers * shape.kv_heads * shape.head_dim * c
        parts["generation"] = work.generation_batch * (work.prompt_tokens + work.completion_tokens) * kv
    if on_gpu:
        parts["cuda overhead"] = GPU_OVERHEAD_GB * GiB
    return Estimate(parts)


def logits(shape: Shape, tokens: int, work: Workload, b: int, on_gpu: bool) -> float:
    """Bytes of the LM head's outputs for one micro-batch.

    Fused (GRPO): one (TOKEN_TILE x VOCAB_TILE) buffer in the compute dtype; off Triton (the CPU) the torch ops on
    each tile make three float32 temporaries of the tile's used width; the backward accumulates the head's
    gradient in float32. Unfused: float32 logits, their log-softmax and its gradient.
    """
    if work.head == "score":
        return 0.0
    if work.head == "vocab":
        return 3 * tokens * shape.vocab * 4
    rows = min(tokens, TOKEN_TILE)
    out = rows * VOCAB_TILE * b + shape.vocab * shape.hidden * 4
    if not on_gpu:
        out += 3 * rows * min(VOCAB_TILE, shape.vocab) * 4
    return out


def activations(shape: Shape, tokens: int, sequences: int, b: int, checkpointing: bool, attention: str | None) -> float:
    """Bytes kept for the backward pass of one micro-batch of `tokens` tokens.

    Per token and layer a Llama block keeps its two norms' inputs and outputs (4h), q, k, v and the attention
    output (2h + 2 kv), the gate, up, activation and product of the MLP (4 I); eager attention also keeps the
    (heads x length x length) scores and probabilities of each sequence. With gradient checkpointing only the
    layer inputs stay (h per token and layer) plus one layer's full set during its recomputation.
    """
    kv = shape.kv_heads * shape.head_dim
    per_token_layer = (6 * shape.hidden + 2 * kv + 4 * shape.intermediate) * b
    length = tokens / max(1, sequences)
    scores = 2 * shape.heads * length * length * b * sequences if attention == "eager" else 0.0
    full_layer = tokens * per_token_layer + scores
    if checkpointing:
        return shape.layers * tokens * shape.hidden * b + full_layer
    return shape.layers * full_layer


# ----------------------------------------------------------------------------- a bundle's stages


TOY_VOCAB = 300
"""Upper bound of a toy tokenizer's vocabulary (harness/world/tokenizer.py trains 300 at most)."""
SEQUENCE_DEFAULTS = {"max_length": 1024}
"""TRL's default sequence limit of SFT, DPO and reward configs, used when a stage does not set `max_length`."""


@dataclass
class StagePlan:
    """The memory plan of one training stage: where it is in the bundle, what it runs on, its estimate."""

    key: str
    variant: str
    index: int
    """The stage's position in its variant."""
    kind: str
    processes: int
    on_gpu: bool
    estimate: Estimate | None
    """None: the model's shape is unknown (a hub model without `architecture:`)."""
    budget_gb: float
    host_gb: float | None = None
    """Host memory per node the stage asks for (its resources.mem_gb)."""

    @property
    def fits(self) -> bool:
        return self.estimate is None or not self.on_gpu or self.estimate.total <= self.budget_gb * GiB

    def line(self) -> str:
        where = f"{self.processes} GPU{'s' if self.processes > 1 else ''}" if self.on_gpu else "CPU"
        if self.estimate is None:
            return f"{self.key} ({self.kind}, {where}): no plan (the model config has no `architecture:`)"
        budget = f" of {self.budget_gb:g}" if self.on_gpu else ""
        host = f"; host {self.host_gb:g} GB per node" if self.host_gb is not None and self.on_gpu else ""
        plan = self.estimate.line().replace(" GiB per GPU", f"{budget} GiB per GPU", 1)
        return f"{self.key} ({self.kind}, {where}): {plan}{host}"


def workload(stage, dataset, processes: int, on_gpu: bool) -> Workload:
    """What one process of `stage` holds at once: its kind's declared traits (StageKind.memory) applied to its
    merged args, the batch laid out over `processes`, and the generation engine it will use (see Workload)."""
    from harness.stages import STAGES
    from harness.stages.plumbing import batch_layout

    args, kind = stage.args, STAGES.get(stage.kind)
    t = {"samples": None, "prompt": False, "sequences_per_example": 1, "reference": False, "vocab_mean": False,
         "head": "vocab", "checkpointing_default": True, "generation_batch": 0,
         "completion_tokens": args.get("max_length") or SEQUENCE_DEFAULTS["max_length"]}  # fmt: skip
    t |= kind.memory(args, stage.objective) if kind.memory else {}
    layout = batch_layout(args, processes) if "per_device_train_batch_size" in args else {}
    micro = layout.get("per_device_train_batch_size", 1)
    prompt = dataset.prompt_tokens or DEFAULT_PROMPT_TOKENS["generated" if dataset.generated else "hub"]
    vllm = on_gpu and args.get("generation_engine", "auto") != "hf"  # on a GPU, auto means vLLM or a refusal
    share, generation = 0.0, t["generation_batch"]
    if t["samples"] == "rollouts":  # sampled during training: TRL's colocated vLLM, a vLLM server, or HF generate
        if vllm and args.get("vllm_mode", "colocate") == "colocate":
            share = args.get("vllm_gpu_memory_utilization", 0.3)
        steps = args.get("steps_per_generation") or layout.get("gradient_accumulation_steps", 1)
        generation = 0 if vllm else micro * steps
    elif t["samples"] == "offline":  # a sampling stage: vLLM's engine takes the GPU (its default share)
        share, generation = (0.9, 0) if vllm else (0.0, generation)
    return Workload(micro_batch=micro * t["sequences_per_example"], prompt_tokens=prompt if t["prompt"] else 0,
                    completion_tokens=t["completion_tokens"], processes=processes, generation_batch=generation,
                    reference=t["reference"], vllm_share=share, optimizer=t["samples"] != "offline",
                    head=t["head"], vocab_mean=t["vocab_mean"],
                    checkpointing_default=t["checkpointing_default"])  # fmt: skip


def plan_paper(rp, gpu_mem_gb: float) -> list[StagePlan]:
    """The memory plan of every training stage of a resolved paper (harness.config.schema.ResolvedPaper)."""
    out = []
    for name, variant in rp.variants.items():
        shape = shape_of(rp.models[variant.model], TOY_VOCAB)
        for i, stage in enumerate(variant.stages):
            r = stage.resources
            on_gpu = r.gpus_per_node > 0
            processes = max(1, r.nodes * r.gpus_per_node)
            est = None
            key = rp.stage_keys.get(name, [])[i] if i < len(rp.stage_keys.get(name, [])) else f"variants.{name}"
            if shape is not None:
                try:
                    work = workload(stage, rp.stage_dataset(stage)[1], processes, on_gpu)
                    work.judge_params = _judge_params(rp, stage, on_gpu)
                except ValueError as e:  # the batch cannot be laid out over the processes granted
                    from harness.config.errors import ConfigError

                    raise ConfigError(rp.file, f"{key}.args.global_batch_size", f"{e} ({r.nodes} node(s) x "
                                      f"{r.gpus_per_node} GPUs: resources.train)") from None  # fmt: skip
                est = estimate(shape, work, stage.parallel, on_gpu, gpu_mem_gb)
            out.append(StagePlan(key, name, i, stage.kind, processes, on_gpu, est, gpu_mem_gb, r.mem_gb))
    return out


def _judge_params(rp, stage, on_gpu: bool) -> float:
    """Parameters of the models the stage's rewards read (judge.py); a GPU stage needs each one's shape."""
    from harness.config.errors import ConfigError
    from harness.layout import CONFIGS
    from harness.rewards import models_read

    total = 0.0
    for name in models_read(stage.rewards):
        shape = shape_of(rp.models[name], TOY_VOCAB)
        if shape is None and on_gpu:
            raise ConfigError(CONFIGS / "models" / f"{name}.yaml", "architecture",
                              f"{rp.file}: a reward of a GPU stage reads this model: the memory plan needs its shape "
                              "(layers, hidden, ... from its config.json)")  # fmt: skip
        total += shape.params if shape is not None else 0.0
    return total


def check_paper(rp, gpu_mem_gb: float, site: str, node_mem_gb: float | None = None) -> list[StagePlan]:
    """plan_paper, refusing (ConfigError naming the bundle, the stage's key and the numbers) a GPU stage whose
    estimate exceeds the site's GPU memory, or whose host memory exceeds a node's (`site`: the cluster config
    file that sets them)."""
    from harness.config.errors import ConfigError
    from harness.layout import CONFIGS

    plans = plan_paper(rp, gpu_mem_gb)
    for p in plans:
        if p.on_gpu and p.estimate is None:
            model = rp.variants[p.variant].model
            raise ConfigError(CONFIGS / "models" / f"{model}.yaml", "architecture",
                              f"{rp.file}: {p.key} runs on GPUs: the memory plan needs the model's shape "
                              "(layers, hidden, ... from its config.json)")  # fmt: skip
        stage = rp.variants[p.variant].stages[int(p.index)]
        if node_mem_gb is not None and p.on_gpu and stage.resources.mem_gb > node_mem_gb:
            r = stage.resources
            raise ConfigError(rp.file, f"{p.key}.resources.mem_gb",
                              f"asks for {r.mem_gb:g} GB of host memory per node (resources.train nodes {r.nodes}, "
                              f"gpus_per_node {r.gpus_per_node}) but the nodes have {node_mem_gb:g} GB "
                              f"({site}: node_mem_gb): offload less, or use more nodes")  # fmt: skip
        if not p.fits:
            raise ConfigError(
                rp.file, p.key,
                f"does not fit: the memory plan needs {p.estimate.total / GiB:.1f} GiB per GPU "
                f"({p.estimate.line().split('(', 1)[1]} with resources.train nodes {stage.resources.nodes}, "
                f"gpus_per_node {stage.resources.gpus_per_node}, but the GPUs have {gpu_mem_gb:g} GiB "
                f"({site}: gpu_mem_gb). "
                "Shard it (`parallel: {strategy: fsdp}` or zero3), offload, enable gradient checkpointing, lower "
                "max_per_device_batch_size or the vLLM share, or ask for more GPUs (`resources`)",
            )  # fmt: skip
    return plans
