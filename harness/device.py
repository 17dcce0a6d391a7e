"""The one place that answers "is there a GPU, is vLLM installed, which engine generates" for training,
sampling and evaluation alike. torch is imported only when the question is asked.
"""

from __future__ import annotations

from importlib.util import find_spec

ENGINES = ("auto", "hf", "vllm")
"""Generation engines a stage or an eval suite may ask for (`auto`: vLLM on a GPU, transformers on the CPU)."""


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
    """The generation engine to use: `auto` is vLLM on a GPU and transformers on the CPU.

    On a GPU without the vllm package, `auto` refuses rather than fall back to transformers' generate
    (hours instead of minutes at paper scale); asking for `hf` explicitly is the way to mean it.

    >>> resolve_engine("auto", cuda_visible=True, vllm=True), resolve_engine("auto", cuda_visible=False, vllm=True)
    ('vllm', 'hf')
    >>> resolve_engine("hf", cuda_visible=True, vllm=False)
    'hf'
    """
    cuda_visible = cuda() if cuda_visible is None else cuda_visible
    vllm = vllm_installed() if vllm is None else vllm
    if requested == "auto" and cuda_visible and not vllm:
        raise RuntimeError(
            "engine: auto on a GPU generates with vLLM, but the vllm package is not installed (see the README's "
            "GPU install line); to generate with transformers instead, say so: `generation_engine: hf` in the "
            "stage's args, or `engine: hf` in the eval suite"
        )
    if requested == "auto":
        return "vllm" if cuda_visible else "hf"
    if requested == "vllm" and not (cuda_visible and vllm):
        missing = (
            "no GPU is visible"
            if not cuda_visible
            else "the vllm package is not installed (see the README's GPU install line)"
        )
        raise RuntimeError(f"engine: vllm asked for, but {missing}; use engine: hf or auto")
    return requested


def generation_record(engine: str, vllm_mode: str | None = None) -> dict:
    """What a stage records about how it generated: the engine, its version, and vLLM's mode (colocate/server).

    >>> generation_record("hf")["engine"], "vllm_mode" in generation_record("hf")
    ('hf', False)
    """
    from importlib.metadata import PackageNotFoundError, version

    package = "vllm" if engine == "vllm" else "transformers"
    try:
        found = version(package)
    except PackageNotFoundError:
        found = "not installed"
    return {"engine": engine, "engine_version": found} | ({"vllm_mode": vllm_mode} if engine == "vllm" else {})


VLLM_SERVER_ENV = "HARNESS_VLLM_SERVER_URL"
"""Set in a training job by harness.serve: the base URL of the vLLM server job it generates with."""
