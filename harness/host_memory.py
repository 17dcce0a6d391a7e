"""Host memory per node of a GPU job, from the model's shape and the parallelism, where a scale leaves
`resources.<job>.mem_gb` null (harness.config.load fills it; `harness validate` refuses more than the site's
`node_mem_gb`). The GPU side is harness/memory.py.
"""

from __future__ import annotations

from harness.config.parallel import ParallelConfig, load_dtype
from harness.memory import BYTES, GiB, Shape

HOST_PER_PROCESS_GB = 6.0
"""Python, torch, tokenizer, dataset and dataloader of one process (an assumption; the toy GRPO process peaks at
~1 GB of RSS on the CPU, the small-real one at ~5 GB with its model and optimizer included)."""
HOST_MARGIN = 1.25
HOST_FLOOR_GB = 32.0
"""The least a GPU job asks for (CUDA, NCCL and vLLM's host-side buffers are not counted above)."""


def host_memory_gb(shape: Shape, parallel: ParallelConfig | None, tasks_per_node: int, training: bool) -> float:
    """Host memory a node needs: per process its runtime (HOST_PER_PROCESS_GB) and one full copy of the weights
    as loaded (each rank reads the checkpoint before the strategy shards it), plus its share of what is
    offloaded (parameters; optimizer state and float32 gradients), with a 25% margin; HOST_FLOOR_GB at least.

    >>> shape = Shape(7.6e9, 28, 3584, 18944, 28, 4, 152064)  # 1.25 x 8 x (6 GiB + 7.6e9 x 2 B):
    >>> round(host_memory_gb(shape, ParallelConfig("fsdp", dtype="bfloat16"), 8, training=True))
    202
    >>> round(host_memory_gb(shape, ParallelConfig("fsdp", dtype="float32"), 8, training=True))  # 4 B/param
    343
    >>> round(host_memory_gb(shape, None, 1, training=False))  # one evaluation process: 1.25 x 20.2 GB, the floor
    32
    """
    p = parallel or ParallelConfig(dtype="float32")
    per_param = BYTES[load_dtype(p, on_gpu=True)] if training else 2  # evaluation: vLLM reads bf16
    per_process = HOST_PER_PROCESS_GB * GiB + shape.params * per_param
    if training and p.offload_params:
        per_process += shape.params * per_param / max(1, tasks_per_node)
    if training and p.offload_optimizer:
        per_process += shape.params * (8 + 4) / max(1, tasks_per_node)
    return max(HOST_FLOOR_GB, HOST_MARGIN * tasks_per_node * per_process / GiB)
