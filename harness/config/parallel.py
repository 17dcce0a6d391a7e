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
    gradient_checkpointing: bool | None = None
    """Recompute activations in the backward pass instead of keeping them (less memory, ~30% more compute).
    None: the trainer's default (on in TRL's configs, off in transformers' TrainingArguments)."""


def check(p: ParallelConfig) -> None:
    """Known strategy, dtype and attention; offload only where the strategy has it (raises Invalid)."""
    for key, value, known in (("strategy", p.strategy, STRATEGIES), ("dtype", p.dtype, DTYPES)):
        if value not in known:
            raise Invalid(key, f"unknown {key} {value!r} (known: {', '.join(known)})")
    if p.attn_implementation is not None and p.attn_implementation not in ATTENTION:
        raise Invalid(
            "attn_implementation", f"unknown attention {p.attn_implementation!r} (known: {', '.join(ATTENTION)})"
        )
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


def trainer_args(p: ParallelConfig | None, on_gpu: bool) -> dict:
    """The keyword arguments of TRL's configs (and transformers' TrainingArguments) that realise `p`.

    None renders nothing: the trainer as configured before `parallel:` existed (bf16 on a GPU). Mixed precision
    follows `dtype` (mixed_precision). `model_init_kwargs` is what TRL's GRPO, SFT, DPO and Reward configs pass
    to `from_pretrained` (TrainingArguments has no such field: a stage that loads its own model passes them
    itself). FSDP is FSDP2 (see fsdp_config); with gradient checkpointing it checkpoints activations itself
    (transformers refuses both switches at once, and its own checkpointing would all-gather each layer twice).
    accelerate 1.15 builds FSDP only on an accelerator: in a CPU-only multi-process job `fsdp` is dropped and
    the model replicated as with DDP, without a warning.

    >>> trainer_args(None, on_gpu=True)
    {}
    >>> trainer_args(ParallelConfig(), on_gpu=False)
    {'model_init_kwargs': {'dtype': 'float32'}, 'bf16': False, 'fp16': False}
    >>> {k: v for k, v in trainer_args(ParallelConfig(dtype="float16"), on_gpu=True).items() if "16" in k}
    {'bf16': False, 'fp16': True}
    >>> a = trainer_args(ParallelConfig("fsdp", True, True, attn_implementation="sdpa", gradient_checkpointing=True),
    ...                  on_gpu=True)
    >>> a["model_init_kwargs"], a["fsdp"], a["gradient_checkpointing"]
    ({'dtype': 'bfloat16', 'attn_implementation': 'sdpa'}, True, False)
    >>> a["fsdp_config"]
    {'version': 2, 'reshard_after_forward': True, 'auto_wrap_policy': 'TRANSFORMER_BASED_WRAP', 'cpu_offload': True, 'state_dict_type': 'FULL_STATE_DICT', 'activation_checkpointing': True}
    >>> trainer_args(ParallelConfig("zero2", gradient_checkpointing=False), on_gpu=True)["gradient_checkpointing"]
    False
    """
    if p is None:
        return {}
    out: dict = {"model_init_kwargs": {"dtype": load_dtype(p, on_gpu)}, **mixed_precision(p, on_gpu)}
    if p.attn_implementation is not None:
        out["model_init_kwargs"]["attn_implementation"] = p.attn_implementation
    if p.strategy == "fsdp":
        out["fsdp"] = True
        out["fsdp_config"] = fsdp_config(p)
        if p.gradient_checkpointing:
            out["fsdp_config"]["activation_checkpointing"] = True
            out["gradient_checkpointing"] = False
    elif p.strategy in ("zero2", "zero3"):
        out["deepspeed"] = deepspeed_config(p, on_gpu)
    if p.gradient_checkpointing is not None and "gradient_checkpointing" not in out:
        out["gradient_checkpointing"] = p.gradient_checkpointing
    return out


def fsdp_config(p: ParallelConfig) -> dict:
    """transformers' `fsdp_config` for strategy fsdp: FSDP2, full shard (parameters gathered for each layer's
    forward and freed after it), one unit per transformer layer (the model's `_no_split_modules`), parameters,
    gradients and optimizer state in host memory with offload, and checkpoints as one full state dict
    (the folder every reader of a model loads).

    FSDP2, not FSDP1: transformers 5.19 deprecates FSDP1 (removed in 5.20), and accelerate 1.15 refuses to
    build an FSDP1 plugin without an accelerator, while FSDP2's `fully_shard` runs over gloo on the CPU too
    (tests/test_sharding.py, where accelerate's accelerator-only gate is lifted in the test's processes).

    >>> fsdp_config(ParallelConfig("fsdp"))["cpu_offload"]
    False
    """
    return {
        "version": 2,
        "reshard_after_forward": True,
        "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "cpu_offload": p.offload_params,
        "state_dict_type": "FULL_STATE_DICT",
    }


def deepspeed_config(p: ParallelConfig, on_gpu: bool) -> dict:
    """transformers' `deepspeed` config for zero2 / zero3. The batch sizes, accumulation and clipping are
    "auto": transformers fills them from the trainer's own arguments, so the batch layout stays the harness's
    (harness.stages.plumbing.batch_layout). bf16 / fp16 as the trainer's (mixed_precision). ZeRO-3 gathers the
    full weights when the model is saved, so the saved folder loads anywhere.

    >>> deepspeed_config(ParallelConfig("zero3", offload_params=True, offload_optimizer=True), on_gpu=True)
    ... # doctest: +NORMALIZE_WHITESPACE
    {'zero_optimization': {'stage': 3, 'overlap_comm': True, 'contiguous_gradients': True,
      'stage3_gather_16bit_weights_on_model_save': True, 'offload_param': {'device': 'cpu', 'pin_memory': True},
      'offload_optimizer': {'device': 'cpu', 'pin_memory': True}},
     'bf16': {'enabled': True}, 'fp16': {'enabled': False}, 'train_batch_size': 'auto',
     'train_micro_batch_size_per_gpu': 'auto', 'gradient_accumulation_steps': 'auto', 'gradient_clipping': 'auto'}
    >>> deepspeed_config(ParallelConfig("zero2"), on_gpu=False)["zero_optimization"]
    {'stage': 2, 'overlap_comm': True, 'contiguous_gradients': True}
    """
    zero: dict = {"stage": 3 if p.strategy == "zero3" else 2, "overlap_comm": True, "contiguous_gradients": True}
    if p.strategy == "zero3":
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    host = {"device": "cpu", "pin_memory": on_gpu}  # pinned host memory needs CUDA
    if p.offload_params:
        zero["offload_param"] = dict(host)
    if p.offload_optimizer:
        zero["offload_optimizer"] = dict(host)
    return {
        "zero_optimization": zero,
        **{k: {"enabled": v} for k, v in mixed_precision(p, on_gpu).items()},
        "train_batch_size": "auto",
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
    }


def mixed_precision(p: ParallelConfig, on_gpu: bool) -> dict[str, bool]:
    """The trainer's `bf16` / `fp16` switches: on a GPU, bf16 autocast unless the weights are loaded as float16
    (then fp16, for GPUs without bfloat16); on the CPU neither.

    >>> mixed_precision(ParallelConfig(), on_gpu=True), mixed_precision(ParallelConfig(dtype="float16"), on_gpu=False)
    ({'bf16': True, 'fp16': False}, {'bf16': False, 'fp16': False})
    """
    half = load_dtype(p, on_gpu) == "float16"
    return {"bf16": on_gpu and not half, "fp16": on_gpu and half}
