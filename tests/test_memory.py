"""The memory plan (harness/memory.py): hand-computed parts, sharding, the refusal of a stage that cannot fit
(file, key and numbers) in `harness validate` and in the Snakefile, every shipped bundle fitting at paper scale,
and the live-tensor tracker the calibration benchmark (bench/memory.py) measures with."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from harness.config.errors import ConfigError
from harness.config.load import list_papers, load_paper, load_paper_config, paper_file
from harness.config.parallel import ParallelConfig
from harness.memory import GiB, Shape, Workload, check_paper, estimate, llama_params, plan_paper
from tests.conftest import ROOT
from tests.test_config import load, stage0

SHAPE = Shape(params=1e9, layers=10, hidden=1000, intermediate=4000, heads=10, kv_heads=2, vocab=50_000)


def test_model_state_by_hand_and_as_each_strategy_shards_it():
    work = Workload(micro_batch=1, prompt_tokens=10, completion_tokens=10, processes=8)
    fp32 = estimate(SHAPE, work, ParallelConfig(dtype="float32"), on_gpu=True).parts
    assert (fp32["weights"], fp32["gradients"], fp32["optimizer"]) == (4e9, 4e9, 8e9)  # 16 bytes per parameter
    zero2 = estimate(SHAPE, work, ParallelConfig("zero2", dtype="float32"), on_gpu=True).parts
    assert (zero2["weights"], zero2["gradients"], zero2["optimizer"]) == (4e9, 4e9 / 8, 8e9 / 8)
    fsdp = estimate(SHAPE, work, ParallelConfig("fsdp", dtype="float32"), on_gpu=True).parts
    assert (fsdp["weights"], fsdp["gradients"], fsdp["optimizer"]) == (4e9 / 8, 4e9 / 8, 8e9 / 8)
    # one layer being gathered and the next prefetched, plus the embeddings, in bf16 compute
    assert fsdp["gathered layers"] == 2 * (1e9 - 50_000 * 1000) / 10 * 2 + 50_000 * 1000 * 2
    offload = estimate(SHAPE, work, ParallelConfig("fsdp", True, True, dtype="float32"), on_gpu=True).parts
    assert offload["weights"] == offload["optimizer"] == 0.0


def test_activations_logits_and_generation_by_hand():
    work = Workload(micro_batch=2, prompt_tokens=30, completion_tokens=70, generation_batch=4)
    cpu = estimate(SHAPE, work, ParallelConfig(gradient_checkpointing=True), on_gpu=False).parts
    tokens, kv = 200, 2 * 100  # kv_heads x head_dim
    layer = tokens * (6 * 1000 + 2 * kv + 4 * 4000) * 4
    assert cpu["activations"] == 10 * tokens * 1000 * 4 + layer  # layer inputs kept + one layer recomputed
    no_ckpt = estimate(SHAPE, work, ParallelConfig(gradient_checkpointing=False), on_gpu=False).parts
    assert no_ckpt["activations"] == 10 * layer
    # fused log-probs: one (200 x 32768) tile + the head's fp32 gradient + three fp32 temporaries off Triton
    assert cpu["logits"] == 200 * 32768 * 4 + 50_000 * 1000 * 4 + 3 * 200 * 32768 * 4
    assert cpu["generation"] == 4 * 100 * 2 * 10 * kv * 4  # KV cache of the generation batch
    total = estimate(SHAPE, work, ParallelConfig(gradient_checkpointing=True), on_gpu=False)
    static = sum(v for k, v in total.parts.items() if k not in ("activations", "logits", "generation"))
    assert total.total == static + max(cpu["activations"] + cpu["logits"], cpu["generation"])


def test_vllm_share_and_cuda_overhead_count_on_a_gpu_only():
    work = Workload(micro_batch=1, prompt_tokens=10, completion_tokens=10, vllm_share=0.3)
    gpu = estimate(SHAPE, work, None, on_gpu=True, gpu_mem_gb=80).parts
    assert gpu["vllm"] == 0.3 * 80 * GiB and gpu["cuda overhead"] > 0
    assert gpu["weights"] == 4e9  # nothing set: TRL loads float32


def test_parameter_count_of_a_known_model():
    assert llama_params(576, 1536, 30, 9, 3, 49152) == 134_515_008  # SmolLM2-135M, tied embeddings


def test_every_shipped_bundle_fits_the_gpus_its_paper_scale_asks_for():
    checked = 0
    for slug in list_papers():
        if "paper" not in load_paper_config(paper_file(slug)).scales:
            continue
        plans = check_paper(load_paper(slug, "paper"), 80.0, "configs/cluster/slurm.yaml")  # raises if not
        gpu = [p for p in plans if p.on_gpu]
        assert gpu and all(p.estimate is not None and p.estimate.total <= 80 * GiB for p in gpu), slug
        checked += 1
    assert checked >= 20


def _over_budget(b):
    """A 7B GRPO stage replicated in float32 on every GPU (plain DDP): ~120 GB of model state alone."""
    b["scales"]["paper"] = {"model": "qwen2.5-math-7b", "parallel": {"strategy": "ddp"}}
    stage0(b)["args"].update(max_completion_length=64)


def test_a_stage_that_cannot_fit_is_refused_with_file_key_and_numbers(tmp_path):
    with pytest.raises(ConfigError) as info:
        check_paper(load(tmp_path, _over_budget, scale="paper"), 80.0, "configs/cluster/slurm.yaml")
    msg = str(info.value)
    assert info.value.key == "variants.gold.stages.0"
    assert msg.startswith(str(tmp_path / "papers" / "p" / "paper.yaml"))
    assert "GiB per GPU" in msg and "80 GiB (configs/cluster/slurm.yaml: gpu_mem_gb)" in msg
    # the same stage sharded over the 8 GPUs fits
    rp = load(tmp_path / "sharded", lambda b: (_over_budget(b), b["scales"]["paper"].update(parallel={})),
              scale="paper")  # fmt: skip
    assert all(p.fits for p in plan_paper(rp, 80.0))


def test_a_rounds_stage_is_named_by_its_key_in_the_bundle(tmp_path):
    def mutate(b):
        _over_budget(b)
        b["variants"]["gold"]["rounds"] = {"count": 2, "stages": b["variants"]["gold"].pop("stages")}

    with pytest.raises(ConfigError) as info:
        check_paper(load(tmp_path, mutate, scale="paper"), 80.0, "configs/cluster/slurm.yaml")
    assert info.value.key == "variants.gold.rounds.stages.0"


def test_validate_shows_each_gpu_stage_plan_and_refuses_an_over_budget_one(tmp_path):
    import copy

    import yaml

    from tests.test_config import BASE

    good = subprocess.run([sys.executable, "-m", "harness", "validate", "one-shot-rlvr", "--scale", "paper"],
                          capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert good.returncode == 0, good.stderr
    assert "memory variants.one_shot.stages.0 (grpo, 8 GPUs):" in good.stdout and "of 80 GiB per GPU" in good.stdout
    bundle = copy.deepcopy(BASE)
    _over_budget(bundle)
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "paper.yaml").write_text(yaml.safe_dump(bundle))
    bad = subprocess.run([sys.executable, "-m", "harness", "--papers-dir", str(tmp_path), "validate", "--scale",
                          "paper"], capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert bad.returncode == 1
    assert "variants.gold.stages.0: does not fit: the memory plan needs" in bad.stderr


def test_the_live_tensor_tracker_counts_what_is_alive_at_once():
    import torch

    spec = importlib.util.spec_from_file_location("bench_memory", ROOT / "bench" / "memory.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    kept = torch.zeros(1000)  # 4000 bytes alive from the start
    tracker = bench.live_tensor_tracker([kept])
    with tracker:
        a = torch.ones(2000)  # 8000 bytes
        b = a * 2  # + 8000: 20000 alive
        view = b[:10]  # a view: no new storage
        del a, b
        c = torch.ones(500)  # 2000 more after 16000 were freed (view keeps b's storage)
    assert tracker.peak == 4000 + 8000 + 8000
    assert tracker.current == 4000 + 8000 + 2000 and view.numel() == 10 and c.numel() == 500


def test_host_memory_follows_the_model_when_the_scale_leaves_it_null(tmp_path):
    small = load(tmp_path / "a", lambda b: b["scales"].update(paper={}), scale="paper")
    big = load(tmp_path / "b", lambda b: b["scales"].update(paper={"model": "qwen3-8b-base"}), scale="paper")
    mem = [rp.variants["gold"].stages[0].resources.mem_gb for rp in (small, big)]
    assert 64 < mem[0] < 200 < mem[1] < 500  # 1.5B vs 8B on 8 GPUs, fp32 loads, 6 GB of runtime per process
    assert small.eval_resources.mem_gb < 64  # one vLLM process
    fixed = load(tmp_path / "c", lambda b: b["scales"].update(paper={"resources": {"train": {"mem_gb": 500}}}),
                 scale="paper")  # fmt: skip
    assert fixed.variants["gold"].stages[0].resources.mem_gb == 500


def test_host_memory_beyond_a_node_is_refused(tmp_path):
    rp = load(tmp_path, lambda b: b["scales"].update(paper={"model": "qwen3-8b-base"}), scale="paper")
    with pytest.raises(ConfigError) as info:
        check_paper(rp, 80.0, "configs/cluster/slurm.yaml", node_mem_gb=256)
    assert info.value.key == "variants.gold.stages.0.resources.mem_gb" and "node_mem_gb" in str(info.value)
