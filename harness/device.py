"""The one place that answers "is there a GPU, is vLLM installed, which engine generates" for training,
sampling and evaluation alike. torch is imported only when the question is asked.
"""

from __future__ import annotations

from importlib.util import find_spec

ENGINES = ("auto", "hf", "vllm")
"""Generation engines a stage or an eval suite may ask for (`auto`: vLLM when a GPU and vLLM are present)."""


def cuda() -> bool:
    """Whether a CUDA GPU is visible to this process."""
    import torch

    return torch.cuda.is_available()


def vllm_installed() -> bool:
    return find_spec("vllm") is not None


def dtype_name() -> str:
    """The dtype models are loaded in: bfloat16 on a GPU, float32 on the CPU."""
    return "bfloat16" if cuda() else "float32"


def resolve_engine(requested: str, cuda_visible: bool | None = None, vllm: bool | None = None) -> str:
    """The generation engine to use: `auto` is vLLM when a GPU and the vllm package are both present.

    >>> resolve_engine("auto", cuda_visible=True, vllm=True), resolve_engine("auto", cuda_visible=False, vllm=True)
    ('vllm', 'hf')
    """
    cuda_visible = cuda() if cuda_visible is None else cuda_visible
    vllm = vllm_installed() if vllm is None else vllm
    if requested == "auto":
        return "vllm" if cuda_visible and vllm else "hf"
    if requested == "vllm" and not (cuda_visible and vllm):
        missing = (
            "no GPU is visible" if not cuda_visible else "the vllm package is not installed (pip install -e '.[vllm]')"
        )
        raise RuntimeError(f"engine: vllm asked for, but {missing}; use engine: hf or auto")
    return requested
