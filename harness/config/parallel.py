"""How a training stage spreads over its GPUs and holds its model in memory (`parallel:` of a scale or a stage).

A scale's `parallel:` sets the defaults of its stages; a stage's `parallel:` overrides them key by key.
Nothing set: plain DDP with the model loaded as TRL loads it (the CPU default). Each strategy is rendered
into the arguments of transformers' TrainingArguments (`fsdp`, `fsdp_config`, `deepspeed`), so accelerate
sets it up inside the trainer from the torch-distributed environment the launcher exports
(harness/launch.py); the memory plan (harness/memory.py) reads the same settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.config.errors import Invalid

STRATEGIES = ("ddp", "fsdp", "zero2", "zero3")
"""`ddp`: a full replica per process; `fsdp`: parameters, gradients and optimizer state sharded over the
processes (FSDP full shard); `zero2`: DeepSpeed ZeRO stage 2 (gradients and optimizer state sharded);
`zero3`: DeepSpeed ZeRO stage 3 (everything sharded). DeepSpeed needs the `deepspeed` package (GPU only)."""
DTYPES = ("auto", "bfloat16", "float16", "float32")
ATTENTION = ("eager", "sdpa", "flash_attention_2", "flash_attention_3")


@dataclass
class ParallelConfig:
    """Parallelism and memory settings of a training stage."""

    strategy: str = "ddp"
    """One of STRATEGIES."""
    offload_params: bool = False
    """fsdp / zero3: keep the parameter shards in host memory between uses."""
    offload_optimizer: bool = False
    """fsdp / zero2 / zero3: keep the optimizer state in host memory (fsdp offloads both or neither)."""
    dtype: str = "auto"
    """Weights as loaded: `auto` is bfloat16 on a GPU and float32 on the CPU (TRL alone loads float32)."""
    attn_implementation: str | None = None
    """eager | sdpa | flash_attention_2 | flash_attention_3; None: the model's default."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass instead of keeping them (less memory, ~30% more compute)."""


def check(p: ParallelConfig) -> None:
    """Known strategy, dtype and attention; offload only where the strategy has it (raises Invalid)."""
    for key, value, known in (("strategy", p.strategy, STRATEGIES), ("dtype", p.dtype, DTYPES)):
        if value not in known:
            raise Invalid(key, f"unknown {key} {value!r} (known: {', '.join(known)})")
    if p.attn_implementation is not None and p.attn_implementation not in ATTENTION:
        raise Invalid("attn_implementation", f"unknown attention {p.attn_implementation!r} (known: {', '.join(ATTENTION)})")
    if p.offload_params and p.strategy not in ("fsdp", "zero3"):
        raise Invalid("offload_params", f"parameters are offloaded by fsdp or zero3, not {p.strategy}")
    if p.offload_optimizer and p.strategy == "ddp":
        raise Invalid("offload_optimizer", "the optimizer state is offloaded by fsdp, zero2 or zero3, not ddp")
    if p.strategy == "fsdp" and p.offload_params != p.offload_optimizer:
        raise Invalid("offload_params", "fsdp offloads parameters and optimizer state together: set both or neither")


def load_dtype(p: ParallelConfig, on_gpu: bool) -> str:
    """The dtype weights are loaded in.

    >>> load_dtype(ParallelConfig(), on_gpu=True), load_dtype(ParallelConfig(), on_gpu=False)
    ('bfloat16', 'float32')
    """
    if p.dtype != "auto":
        return p.dtype
    return "bfloat16" if on_gpu else "float32"
