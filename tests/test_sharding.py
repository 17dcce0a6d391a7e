"""`parallel: {strategy: fsdp}` on two real CPU processes (gloo): the harness's GRPO stage trains the same as with
plain DDP, while each process holds only half of the parameters.

FSDP over two processes is compared with DDP over two processes, not with one process: each GRPO process samples
its own completions, so one process drawing the whole batch draws different ones (one generate call over 2B rows
consumes the sampling RNG differently from two calls over B rows each, and greedy sampling would leave every group
without an advantage). Two processes of either strategy see the same rows and the same RNG streams: only how the
weights are held and the gradients reduced differs (FSDP all-gathers the exact weights for each layer, and
reduce-scatters the gradients where DDP all-reduces them), so losses and weights agree to float rounding.
A sharded run stopped after a checkpoint resumes from it to the same weights.

accelerate 1.15 builds FSDP only on an accelerator: on a CPU-only machine it drops the FSDP plugin and replicates
the model (the DDP path), silently. The stand-in for a GPU here lifts that one check in the test's processes
(`keep_fsdp_on_cpu`); everything after it (transformers' FSDP plugin from the rendered `fsdp_config`, torch's
`fully_shard` over gloo, TRL's generation, checkpoints and saving under FSDP) is the real code. With the
deepspeed package installed the same runs for ZeRO-3 (DeepSpeed's communicator set up first, as accelerate does
on a GPU).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from harness.config.parallel import ParallelConfig
from harness.config.schema import Stage
from harness.config.stage import RewardSpec
from tests.conftest import run_ranks, stage_job

WORLD = 2
STEPS = 4


def grpo_stage(strategy: str | None) -> Stage:
    """4 completions per process (one group of 4), a dense length reward so every group has an advantage."""
    args = dict(learning_rate=1e-3, max_steps=STEPS, per_device_train_batch_size=4, num_generations=4,
                max_completion_length=6, save_steps=2, logging_steps=1)  # fmt: skip
    parallel = None if strategy is None else ParallelConfig(strategy=strategy)
    rewards = [RewardSpec(name="length", args={"max_chars": 6}), RewardSpec(name="exact_match")]
    return Stage(kind="grpo", data="train", rewards=rewards, args=args, parallel=parallel)


def keep_fsdp_on_cpu() -> None:
    """Keep the FSDP plugin on a CPU-only multi-process job (accelerate keeps it only on an accelerator)."""
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType

    original = AcceleratorState.__init__

    def init(self, *args, fsdp_plugin=None, **kwargs):
        original(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
            # in the process-wide state too: every later AcceleratorState() copies it over its own
            PartialState._shared_state["distributed_type"] = DistributedType.FSDP
            self.distributed_type, self.fsdp_plugin = DistributedType.FSDP, fsdp_plugin

    AcceleratorState.__init__ = init


def local_sizes(model) -> tuple[int, int]:
    """(elements this process holds, elements of the whole model): FSDP2 makes each parameter a DTensor of which
    this process holds a shard; ZeRO-3 leaves an empty placeholder with this process's partition beside it."""
    held = total = 0
    for p in model.parameters():
        if hasattr(p, "ds_tensor"):
            held, total = held + p.ds_tensor.numel(), total + p.ds_numel
        else:
            held, total = held + (p.to_local() if hasattr(p, "to_local") else p).numel(), total + p.numel()
    return held, total


def worker(spec_file: str) -> None:
    """One process of the two: the harness's GRPO stage as `harness train` runs it, shard sizes measured after
    every optimizer step (by a callback added to the trainer its kind builds)."""
    from transformers import TrainerCallback

    from harness.stages import grpo, run_stage

    spec = pickle.loads(Path(spec_file).read_bytes())
    if spec["strategy"] == "fsdp":
        keep_fsdp_on_cpu()
    elif spec["strategy"] in ("zero2", "zero3"):
        import deepspeed

        # what accelerate does first on an accelerator (its CPU path leaves DeepSpeed's own communicator unset,
        # and ZeRO-3 then partitions the weights being loaded over one process)
        deepspeed.init_distributed(dist_backend="gloo", auto_mpi_discovery=False)
    rank, seen = int(os.environ["RANK"]), {}

    class Measure(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            seen.setdefault("sizes", []).append(local_sizes(model))

    build_trainer = grpo.build_trainer

    def build(job, rows, ckpt_dir):
        trainer = build_trainer(job, rows, ckpt_dir)
        trainer.add_callback(Measure())
        state = trainer.accelerator.state
        seen.update(type=str(state.distributed_type), backend=state.backend, processes=state.num_processes)
        return trainer

    grpo.build_trainer = build  # grpo.run builds through it
    run_stage(stage_job(grpo_stage(spec["strategy"]), spec["model"], spec["dataset"], spec["data_dir"], 0, spec["out"]))
    Path(spec["out"], f"rank{rank}.json").write_text(json.dumps(seen))
    import torch.distributed as dist

    dist.barrier()
    dist.destroy_process_group()  # gloo aborts at exit when a peer has gone first


def run_two_processes(world, out: Path, strategy: str | None) -> list[dict]:
    """Both ranks with the environment the SLURM launcher exports (harness.launch.torch_env)."""
    root, dataset = world
    out.mkdir(parents=True, exist_ok=True)
    spec = {"strategy": strategy, "model": str(root / "model"), "dataset": dataset, "data_dir": str(root / "data"),
            "out": str(out)}  # fmt: skip
    (out / "spec.pkl").write_bytes(pickle.dumps(spec))
    run_ranks(
        f"from tests.test_sharding import worker; worker({str(out / 'spec.pkl')!r})",
        WORLD,
        timeout=600,
        what=str(strategy),
    )
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(WORLD)]


def logged(out: Path, key: str) -> list[float]:
    return [e[key] for e in json.loads((out / "train.json").read_text())["log_history"] if key in e]


@pytest.fixture(scope="module")
def ddp(world, tmp_path_factory) -> tuple[Path, list[dict]]:
    """The plain DDP run every sharded run is compared with."""
    out = tmp_path_factory.mktemp("ddp") / "run"
    return out, run_two_processes(world, out, None)


def deepspeed_installed() -> bool:
    from importlib.util import find_spec

    return find_spec("deepspeed") is not None


@pytest.mark.slow
@pytest.mark.parametrize(
    "strategy",
    [
        "fsdp",
        pytest.param("zero3", marks=pytest.mark.skipif(not deepspeed_installed(), reason="needs deepspeed")),
    ],
)
def test_sharded_grpo_on_two_processes_trains_as_ddp_with_half_the_weights_each(world, ddp, tmp_path, strategy):
    (ddp_dir, ddp_ranks), out = ddp, tmp_path / strategy
    ranks = run_two_processes(world, out, strategy)

    kind = {"fsdp": "DistributedType.FSDP", "zero3": "DistributedType.DEEPSPEED"}[strategy]
    setup = [(r["type"], r["backend"], r["processes"]) for r in ddp_ranks + ranks]
    assert setup == [("DistributedType.MULTI_CPU", "gloo", 2)] * 2 + [(kind, "gloo", 2)] * 2

    # during training: DDP holds a full replica per process; the sharded run half of every parameter (rows split
    # in two, an odd count padded by one)
    full = ddp_ranks[0]["sizes"][0][1]
    assert all(size == [full, full] for r in ddp_ranks for size in r["sizes"]) and len(ddp_ranks[0]["sizes"]) == STEPS
    for r in ranks:
        assert len(r["sizes"]) == STEPS and all(total == full for _, total in r["sizes"])
        assert all(abs(held - full / 2) <= 0.01 * full for held, _ in r["sizes"]), r["sizes"]

    # the same training: rewards (the same completions drawn), losses, checkpoints, and the saved weights
    for key in ("reward", "loss"):
        a, b = logged(ddp_dir, key), logged(out, key)
        assert len(a) == STEPS, key
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6, msg=key)
    assert (out / "checkpoints" / f"checkpoint-{STEPS}").is_dir()
    before, plain, sharded = (
        AutoModelForCausalLM.from_pretrained(str(d)).state_dict()
        for d in (world[0] / "model", ddp_dir / "model", out / "model")
    )
    assert before.keys() == plain.keys() == sharded.keys()
    moved = max((plain[k] - before[k]).abs().max().item() for k in before)
    assert moved > 1e-4  # the steps did train: the comparison below is not of two untouched copies
    for name in before:
        torch.testing.assert_close(sharded[name], plain[name], rtol=1e-4, atol=1e-6, msg=name)

    # preempted after the step-2 checkpoint: the rerun resumes from the sharded checkpoint to the same weights
    shutil.rmtree(out / "checkpoints" / f"checkpoint-{STEPS}")
    shutil.rmtree(out / "model")
    (out / "train.json").unlink()
    run_two_processes(world, out, strategy)
    assert json.loads((out / "train.json").read_text())["resumed_from"].endswith("checkpoint-2")
    resumed = AutoModelForCausalLM.from_pretrained(str(out / "model")).state_dict()
    for name in before:
        torch.testing.assert_close(resumed[name], sharded[name], rtol=0, atol=1e-6, msg=name)


# --------------------------------------------------------------------------- what a stage's TRL config receives


def test_no_parallel_settings_add_nothing_to_the_trainer_arguments(tmp_path):
    from harness.stages.grpo import GRPOArgs
    from harness.stages.plumbing import common_args

    args = grpo_stage(None).args
    plain = common_args(GRPOArgs, args, 0, tmp_path)
    assert common_args(GRPOArgs, args, 0, tmp_path, None) == plain
    assert not {"fsdp", "fsdp_config", "deepspeed", "model_init_kwargs", "gradient_checkpointing"} & plain.keys()


def test_fsdp_settings_reach_the_grpo_config_as_an_fsdp2_plugin(tmp_path):
    from trl import GRPOConfig

    from harness.stages.grpo import GRPOArgs
    from harness.stages.plumbing import common_args

    p = ParallelConfig("fsdp", offload_params=True, offload_optimizer=True, dtype="bfloat16",
                       attn_implementation="eager", gradient_checkpointing=True)  # fmt: skip
    cfg = GRPOConfig(**common_args(GRPOArgs, grpo_stage(None).args, 0, tmp_path, p))
    plugin = cfg.fsdp_plugin_args
    assert (plugin["fsdp_version"], plugin["reshard_after_forward"], plugin["cpu_offload"]) == (2, True, True)
    assert (plugin["auto_wrap_policy"], plugin["activation_checkpointing"]) == ("TRANSFORMER_BASED_WRAP", True)
    assert cfg.gradient_checkpointing is False  # FSDP checkpoints the layers itself; TRL's default would be on
    assert cfg.model_init_kwargs == {"dtype": "bfloat16", "attn_implementation": "eager"}
    assert (cfg.bf16, cfg.fp16) == (False, False)  # no mixed precision on the CPU


def test_process_reward_model_loads_its_model_with_the_parallel_dtype(tmp_path, world):
    """transformers' TrainingArguments has no model_init_kwargs: the stage loads the model with them itself."""
    from transformers import TrainingArguments

    from harness.stages.plumbing import common_args
    from harness.stages.process_reward_model import ProcessRewardModelArgs

    common = common_args(ProcessRewardModelArgs, {"max_steps": 1}, 0, tmp_path, ParallelConfig(dtype="bfloat16"))
    load = common.pop("model_init_kwargs")
    TrainingArguments(**common)  # every other key is one of its fields
    model = AutoModelForCausalLM.from_pretrained(str(world[0] / "model"), **load)
    assert model.dtype == torch.bfloat16
