"""The grpo stage kind: online RL with TRL's GRPOTrainer, the objective composed from registered pieces
(harness/stages/trainers/grpo.py), rewards from harness/rewards/."""

from __future__ import annotations

from dataclasses import dataclass

from harness.config.errors import Invalid
from harness.config.typed import MAX_SAMPLES, MAX_TEMPERATURE, MAX_TOKENS, limited
from harness.stages.args import TrainerArgs, check_engine, ours
from harness.stages.kind import POLICY, SPLIT, UPSTREAM_SCORER, StageJob, StageKind


@dataclass
class GRPOArgs(TrainerArgs):
    """Hyper-parameters of a GRPO stage (TRL's GRPOConfig)."""

    learning_rate: float = limited(1e-6, gt=0, le=1)
    num_generations: int = limited(8, ge=2, le=MAX_SAMPLES)
    """Completions per prompt (a group): at least 2, or every advantage is 0."""
    max_completion_length: int = limited(1024, ge=1, le=MAX_TOKENS)
    temperature: float = limited(1.0, gt=0, le=MAX_TEMPERATURE)
    num_iterations: int = limited(1, ge=1, le=1000)
    """Optimizer passes over each generated batch (>1: the ratio to the sampling policy moves off 1)."""
    generation_engine: str = ours("auto")
    """How completions are sampled: `hf` (transformers generate), `vllm` (TRL's vLLM, `vllm_mode` colocate or
    server; GPU and the `vllm` extra) or `auto` (vLLM on a GPU, refusing there without the vllm package;
    transformers on the CPU). The engine used is recorded in train.json."""


def check_args(args: dict) -> None:
    """Whole groups per batch (a global batch, too, must be a whole number of them); a known engine."""
    if args["global_batch_size"]:
        batch, made = args["global_batch_size"], "global_batch_size"
    else:
        batch = args["per_device_train_batch_size"] * args["gradient_accumulation_steps"]
        made = (f"per_device_train_batch_size={args['per_device_train_batch_size']} x "
                f"gradient_accumulation_steps={args['gradient_accumulation_steps']}")  # fmt: skip
    if batch % args["num_generations"]:
        raise Invalid("", f"a batch of {batch} completions ({made}) is not a multiple of "
                      f"num_generations={args['num_generations']}")  # fmt: skip
    check_engine(args)


def memory(args: dict, objective) -> dict:
    """For the memory plan: rollouts of max_completion_length after the prompt, TRL's fused log-prob head, a
    reference model with a KL term, vocabulary means for a loss that reads them (ROVER)."""
    from harness.algorithms import POLICY_LOSSES

    needs_mean = getattr(POLICY_LOSSES.get(objective.loss.name), "needs_vocab_mean", False)
    return {
        "samples": "rollouts",
        "prompt": True,
        "completion_tokens": args["max_completion_length"],
        "head": "fused",
        "reference": kl_coef(objective) > 0,
        "vocab_mean": needs_mean,
    }


KIND = StageKind(
    "grpo",
    GRPOArgs,
    reads=SPLIT,
    makes=POLICY,
    entry="harness.stages.grpo:run",
    rewards="required",
    objective=True,
    check_args=check_args,
    trl_config="trl:GRPOConfig",
    memory=memory,
)


def kl_coef(objective) -> float:
    """The reference-KL coefficient: TRL must load a reference model exactly when it is non-zero."""
    return sum(float(a.args.get("coef", 0.0)) for a in objective.aux if a.name == "kl_to_reference")


def generation_args(args: dict) -> dict:
    """TRL's vLLM switches for a GRPO stage, from its `generation_engine` (see GRPOArgs) and `vllm_mode`
    (`colocate`, TRL's default, or `server`: the vLLM server job harness.serve started, its URL in this
    job's environment)."""
    import os

    from harness.device import VLLM_SERVER_ENV, resolve_engine

    if resolve_engine(args.get("generation_engine", "auto")) != "vllm":
        return {"use_vllm": False}
    out = {"use_vllm": True, "vllm_mode": args.get("vllm_mode", "colocate")}
    named = args.get("vllm_server_base_url") or args.get("vllm_server_host")  # a server the user runs
    if out["vllm_mode"] == "server" and os.environ.get(VLLM_SERVER_ENV) and not named:
        out["vllm_server_base_url"] = os.environ[VLLM_SERVER_ENV]
    return out


def generation_record(gen: dict) -> dict:
    """How the stage generated (train.json's `generation`), from `generation_args`' answer.

    >>> generation_record({"use_vllm": False})["engine"]
    'hf'
    """
    from harness.device import generation_record as record

    out = record("vllm" if gen["use_vllm"] else "hf", gen.get("vllm_mode"))
    return out | ({"vllm_server": gen["vllm_server_base_url"]} if "vllm_server_base_url" in gen else {})


def build_trainer(job: StageJob, rows, ckpt_dir, args_type: type = GRPOArgs, generation: dict | None = None,
                  **trainer_extra):  # fmt: skip
    """HarnessGRPOTrainer for the stage, its rewards built (a scorer's folder from `job.upstream`). A kind built on
    it (multiturn_grpo) passes its own args type, its generation switches and more trainer arguments (rollout_func)."""
    from transformers import AutoTokenizer
    from trl import GRPOConfig

    from harness.stages.plumbing import build_rewards, common_args
    from harness.stages.trainers.grpo import HarnessGRPOTrainer

    stage = job.stage
    cfg = GRPOConfig(
        **common_args(args_type, stage.args, job.seed, ckpt_dir, stage.parallel)
        | (generation if generation is not None else generation_args(stage.args)),
        reward_weights=[r.weight for r in stage.rewards],
        beta=kl_coef(stage.objective),
    )
    rewards, policy_rewards, stateful = build_rewards(stage, job.upstream.get(UPSTREAM_SCORER), job.models)
    return HarnessGRPOTrainer(
        model=job.model,
        reward_funcs=rewards,
        args=cfg,
        train_dataset=rows,
        processing_class=AutoTokenizer.from_pretrained(job.model),
        objective=stage.objective,
        policy_rewards=policy_rewards,
        stateful_rewards=stateful,
        gates=[(j, r.gated_by) for j, r in enumerate(stage.rewards) if r.gated_by is not None],
        **trainer_extra,
    )


def sandbox_record(stage) -> dict[str, str]:
    """How each reward that executes code isolates it (harness.sandbox), for the run's tags."""
    from harness.rewards import REWARDS

    return {r.name: r.args.get("isolation", "bubblewrap") for r in stage.rewards if REWARDS.get(r.name).runs_code}


def run(job: StageJob) -> dict:
    from harness.stages.plumbing import fit, split_rows

    record = {"generation": generation_record(generation_args(job.stage.args))}
    if sandboxed := sandbox_record(job.stage):
        record["sandbox"] = sandboxed
    return fit(job, build_trainer, split_rows(job), on_resume=lambda trainer, ckpt: trainer.load_reward_state(ckpt),
               record=record)  # fmt: skip
