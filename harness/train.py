"""Training stages on TRL trainers (GRPO, SFT, DPO, reward model; the process reward model on transformers'
Trainer), driven by a resolved `Stage`; a generate stage (harness/generate.py) samples and labels instead.

A stage writes checkpoints to `<stage dir>/checkpoints/` every `save_steps` and resumes from the
last one when restarted, so a killed or preempted run loses at most `save_steps` steps. The
checkpoints are tagged with the stage's config fingerprint: a changed config starts afresh.
When training ends, the model goes to `<stage dir>/model/` and the log to `<stage dir>/train.json`
(written last: its presence means the stage is complete).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from harness.config import GENERATED, DatasetConfig, Stage
from harness.data import chat_prompts, stage_rows
from harness.rewards import REWARDS, across_processes

FINGERPRINT_FILE = "fingerprint.txt"


def prepare_checkpoints(ckpt_dir: Path, fingerprint: str) -> str | None:
    """The checkpoint to resume from, or None; stale checkpoints of another config are removed."""
    from transformers.trainer_utils import get_last_checkpoint

    tag = ckpt_dir / FINGERPRINT_FILE
    if int(os.environ.get("RANK", "0")) == 0:  # one process of a multi-GPU job tidies up
        if ckpt_dir.exists() and (not tag.exists() or tag.read_text() != fingerprint):
            shutil.rmtree(ckpt_dir)
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        tag.write_text(fingerprint)
    return get_last_checkpoint(str(ckpt_dir)) if ckpt_dir.exists() else None


def batch_layout(args: dict, world_size: int) -> dict:
    """TRL batch arguments for `world_size` processes, honouring a declared global batch.

    The global batch (completions per optimizer step) is split into per-device batches no larger
    than `max_per_device_batch_size`, using as few accumulation steps as possible.

    >>> batch_layout({"global_batch_size": 256, "max_per_device_batch_size": 16}, 8)
    {'per_device_train_batch_size': 16, 'gradient_accumulation_steps': 2}
    >>> batch_layout({"global_batch_size": 256, "max_per_device_batch_size": 64}, 2)
    {'per_device_train_batch_size': 64, 'gradient_accumulation_steps': 2}
    """
    total = args.get("global_batch_size")
    if total is None:
        return {k: args[k] for k in ("per_device_train_batch_size", "gradient_accumulation_steps") if k in args}
    if total % world_size:
        raise ValueError(f"global_batch_size={total} does not split over {world_size} processes")
    per_process = total // world_size
    cap = args.get("max_per_device_batch_size") or per_process
    accumulation = next(a for a in range(1, per_process + 1) if per_process % a == 0 and per_process // a <= cap)
    return {"per_device_train_batch_size": per_process // accumulation, "gradient_accumulation_steps": accumulation}


OUR_ARGS = (
    "global_batch_size",
    "max_per_device_batch_size",
    "generation_engine",
    "apply_chat_template",
    "temporal_residual",
    "num_groups",
    "em_iterations",
    "step_separator",
    "step_labels",
)
"""Stage arguments the harness interprets itself; every other one goes to TRL under its own name."""


def generation_args(stage: Stage) -> dict:
    """TRL's vLLM switches for a GRPO stage, from its `generation_engine` (see GRPOArgs)."""
    from harness.evaluate import resolve_engine

    if stage.kind != "grpo" or resolve_engine(stage.args.get("generation_engine", "auto")) != "vllm":
        return {}
    return {"use_vllm": True, "vllm_mode": "colocate"}


def common_args(stage: Stage, seed: int, ckpt_dir: Path) -> dict:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    trl_args = {k: v for k, v in stage.args.items() if k not in OUR_ARGS}
    return dict(
        output_dir=str(ckpt_dir),
        seed=seed,
        data_seed=seed,
        report_to=[],
        save_strategy="steps",
        save_total_limit=2,
        use_cpu=not _cuda(),
        bf16=_cuda(),
        dataloader_num_workers=0,
        disable_tqdm=True,
        **trl_args | batch_layout(stage.args, world_size),
    )


def build_rewards(stage: Stage, reward_model: str | None = None) -> tuple[list, list, dict]:
    """The stage's reward functions (group-aware ones see their whole group across processes),
    those that score with the live policy, and the stateful ones by name (their state is checkpointed).
    `reward_model`: the trained reward model's folder, for rewards that read one."""
    funcs, policy, stateful = [], [], {}
    for spec in stage.rewards:
        factory = REWARDS.get(spec.name)
        fn = factory.build(**spec.args | ({"model": reward_model} if factory.needs_trained_model else {}))
        if factory.needs_policy:
            policy.append(fn)
        if factory.stateful:
            stateful[spec.name] = fn
        funcs.append(across_processes(fn) if factory.group_aware else fn)
    return funcs, policy, stateful


def build_trainer(stage: Stage, model_path: str, train_ds, seed: int, ckpt_dir: Path, upstream: dict | None = None):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if stage.kind == "process_reward_model":
        from harness.process_reward import build_prm

        return build_prm(stage, model_path, (upstream or {})["pairs"], common_args(stage, seed, ckpt_dir), tokenizer)
    if stage.kind in ("dpo", "reward_model"):
        from harness.preference import build_dpo, build_reward_model

        common = common_args(stage, seed, ckpt_dir)
        if stage.kind == "dpo":
            return build_dpo(stage, model_path, (upstream or {})["pairs"], common, tokenizer)
        return build_reward_model(model_path, (upstream or {})["pairs"], common, tokenizer)
    if stage.kind == "grpo":
        from trl import GRPOConfig

        from harness.grpo import HarnessGRPOTrainer, kl_coef

        cfg = GRPOConfig(
            **common_args(stage, seed, ckpt_dir),
            **generation_args(stage),
            reward_weights=[r.weight for r in stage.rewards],
            beta=kl_coef(stage.objective),
        )
        rewards, policy_rewards, stateful = build_rewards(stage, (upstream or {}).get("reward_model"))
        return HarnessGRPOTrainer(
            model=model_path,
            reward_funcs=rewards,
            args=cfg,
            train_dataset=train_ds,
            processing_class=tokenizer,
            objective=stage.objective,
            policy_rewards=policy_rewards,
            stateful_rewards=stateful,
        )
    if stage.kind == "sft":
        from trl import SFTConfig

        from harness.sft import HarnessSFTTrainer

        target = "solution" if "solution" in train_ds.column_names else "answer"  # scratchpad worlds show the steps
        train_ds = train_ds.rename_column(target, "completion")
        cfg = SFTConfig(**common_args(stage, seed, ckpt_dir), completion_only_loss=True)
        return HarnessSFTTrainer(model=model_path, args=cfg, train_dataset=train_ds, processing_class=tokenizer,
                                 temporal_residual=stage.args.get("temporal_residual"))  # fmt: skip
    raise ValueError(f"unknown stage kind {stage.kind!r}")


def train_stage(stage: Stage, model_path: str, dataset: DatasetConfig, data_dir: Path | None, seed: int,
                stage_dir: Path, fingerprint: str, snapshot_steps: list[int] = (), upstream: dict | None = None) -> dict:  # fmt: skip
    """Run (or resume) one stage; returns the summary also written to train.json.

    The model at each of `snapshot_steps` is saved to `<stage dir>/snapshots/step<N>/` for evaluation
    during training (separate jobs, harness.plan.Plan.checkpoint_evals). `upstream`: what the stage reads
    from earlier stages (harness.plan.Plan.upstream): `pairs`, `reward_model`."""
    start, upstream = time.time(), upstream or {}
    rows = None if stage.data == GENERATED else stage_rows(dataset, stage.data, stage.data_args, data_dir)
    if rows is not None and stage.args.get("apply_chat_template"):
        from transformers import AutoTokenizer

        rows = chat_prompts(rows, AutoTokenizer.from_pretrained(model_path))
    if stage.kind == "generate":
        from harness.generate import generate_stage

        return generate_stage(stage, model_path, rows, seed, stage_dir, upstream.get("reward_model"))
    if stage.kind == "reward_model" and (stage.args.get("num_groups") or 1) > 1:
        from harness.reward_mixture import train_mixture

        return train_mixture(stage, model_path, upstream["pairs"], seed, stage_dir, fingerprint)
    ckpt_dir = stage_dir / "checkpoints"
    resume = prepare_checkpoints(ckpt_dir, fingerprint)
    print(f"stage {stage.kind} from {model_path}: " + (f"resuming from {resume}" if resume else "starting"), flush=True)
    if stage.data_args.lowest_likelihood is not None:
        from harness.curation import lowest_likelihood

        rows = lowest_likelihood(rows, model_path, stage.data_args.lowest_likelihood)
    trainer = build_trainer(stage, model_path, rows, seed, ckpt_dir, upstream)
    if resume and stage.kind == "grpo":
        trainer.load_reward_state(resume)
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # one line per log instead of the whole dict
    trainer.add_callback(_progress_callback())
    if snapshot_steps:
        trainer.add_callback(_snapshot_callback(set(snapshot_steps), stage_dir / "snapshots"))
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(str(stage_dir / "model"))  # every rank takes part; rank 0 writes
    if not trainer.is_world_process_zero():
        return {}
    trainer.processing_class.save_pretrained(str(stage_dir / "model"))
    if stage.kind == "process_reward_model":  # how the process_reward reward must cut completions into steps
        prm = {k: stage.args[k] for k in ("step_separator", "step_labels")}
        (stage_dir / "model" / "prm.json").write_text(json.dumps(prm))
    summary = {
        "kind": stage.kind,
        "init_model": model_path,
        "resumed_from": resume,
        "seconds": time.time() - start,
        "global_step": trainer.state.global_step,
        "log_history": trainer.state.log_history,
    }
    (stage_dir / "train.json").write_text(json.dumps(summary, indent=1))
    return summary


def _progress_callback():
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        """One line per logging step: step, reward/loss, seconds (TRL's own bar is off in logs)."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            keys = (
                "loss",
                "reward",
                "kl",
                "entropy",
                "rewards/accuracies",
                "rewards/margins",
                "expert/sft_weight",
                "learning_rate",
            )
            shown = " ".join(f"{k} {logs[k]:.4g}" for k in keys if k in (logs or {}))
            print(f"step {state.global_step}/{state.max_steps} {shown}", flush=True)

    return Progress()


def _snapshot_callback(steps: set[int], root: Path):
    from transformers import TrainerCallback

    class Snapshot(TrainerCallback):
        """Saves the model (and tokenizer) at the chosen steps; a resumed run keeps those already saved."""

        def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
            out = root / f"step{state.global_step}"
            if state.global_step in steps and state.is_world_process_zero and not (out / "config.json").exists():
                tmp = out.with_name(out.name + ".partial")  # a kill mid-save leaves no half-written snapshot
                model.save_pretrained(str(tmp))
                processing_class.save_pretrained(str(tmp))
                shutil.rmtree(out, ignore_errors=True)
                tmp.rename(out)

    return Snapshot()


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
