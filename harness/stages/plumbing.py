"""What every trainer-backed stage kind shares: its rows, TRL's common arguments and batch layout,
checkpoints, reward building, progress and snapshot callbacks, and the train-save-summarize loop.

A stage writes checkpoints to `<stage dir>/checkpoints/` every `save_steps` and resumes from the
last one when restarted, so a killed or preempted run loses at most `save_steps` steps. The
checkpoints are tagged with the job's fingerprint and what it starts from as built (`checkpoint_key`): a changed
config, or a base model rebuilt under the same config, starts afresh; a checkpoint is
resumed from only once marked complete (a kill while saving leaves one that is discarded). When training
ends, the model goes to `<stage dir>/model/` and the summary to `<stage dir>/train.json` (written
last: its presence means the stage is complete).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from harness.config.parallel import ParallelConfig, trainer_args
from harness.device import cuda
from harness.layout import CHECKPOINT_DONE, CHECKPOINT_TAG, CHECKPOINTS, MODEL, SNAPSHOTS, STAGE_SUMMARY, write_atomic
from harness.rewards import REWARDS, across_processes
from harness.stages.args import trl_args
from harness.stages.kind import StageJob


def checkpoint_key(job: StageJob) -> str:
    """The tag a stage's checkpoints are valid under: the job's fingerprint (its config) plus what it starts from as
    built. The fingerprint names the base model, upstream stages and the models its rewards read by path only; a base rebuilt since a checkpoint
    was saved (a toy base built again to its skill, an earlier stage run again) leaves that path and the fingerprint
    as they were, and resuming would continue training the old model. Files' names, sizes and modification times
    stand for their content (hashing a paper-scale model's weights would take minutes); a hub id stands for itself
    (its pinned revision is in the fingerprint)."""
    import hashlib

    parts = []
    for p in [job.model, *job.upstream.values(), *job.models.values()]:
        path = Path(p)
        files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path] if path.is_file() else []
        parts += [f"{f}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files] or [str(p)]
    return f"{job.fingerprint}+{hashlib.sha256(chr(10).join(parts).encode()).hexdigest()[:16]}"


def prepare_checkpoints(ckpt_dir: Path, fingerprint: str, wait_s: float = 600.0) -> str | None:
    """The checkpoint to resume from, or None; stale checkpoints of another config, and those interrupted while
    being written (no CHECKPOINT_DONE inside), are removed.

    One process of a multi-GPU job (rank 0) tidies up; the others look for the last checkpoint only once
    it is done (a barrier when torch.distributed is up, else until the tag holds this fingerprint, for at
    most `wait_s` seconds), so none of them picks a checkpoint that rank 0 is deleting.
    """
    import torch.distributed as dist
    from transformers.trainer_utils import get_last_checkpoint

    tag = ckpt_dir / CHECKPOINT_TAG
    rank, distributed = int(os.environ.get("RANK", "0")), dist.is_available() and dist.is_initialized()
    if rank == 0:
        if ckpt_dir.exists() and (not tag.exists() or tag.read_text() != fingerprint):
            shutil.rmtree(ckpt_dir)
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        for partial in sorted(ckpt_dir.glob("checkpoint-*")):
            if partial.is_dir() and not (partial / CHECKPOINT_DONE).is_file():
                print(f"removing {partial.name}: interrupted while being saved", flush=True)
                shutil.rmtree(partial)
        write_atomic(tag, fingerprint)
    if distributed:
        dist.barrier()
    elif rank != 0:
        deadline = time.monotonic() + wait_s
        while not (tag.is_file() and tag.read_text() == fingerprint):
            if time.monotonic() > deadline:
                raise TimeoutError(f"rank {rank}: rank 0 did not tag {ckpt_dir} with {fingerprint} in {wait_s:.0f} s")
            time.sleep(0.5)
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


def common_args(args_type: type, args: dict, seed: int, ckpt_dir: Path, parallel: ParallelConfig | None = None) -> dict:
    """Keyword arguments of TRL's config for a stage: its args less those the harness keeps back
    (harness.stages.args.ours), the batch laid out over the processes, the harness's own settings, and
    the stage's `parallel` (harness.config.parallel.trainer_args; None adds nothing)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    on_gpu = cuda()
    base = dict(
        output_dir=str(ckpt_dir),
        seed=seed,
        data_seed=seed,
        report_to=[],
        save_strategy="steps",
        save_total_limit=2,
        use_cpu=not on_gpu,
        bf16=on_gpu,
        dataloader_num_workers=0,
        disable_tqdm=True,
        **trl_args(args_type, args) | batch_layout(args, world_size),
    )
    if parallel is not None and parallel.strategy == "fsdp" and not on_gpu and world_size > 1:
        print("note: accelerate builds FSDP on GPUs only: this CPU job replicates the model in every process "
              "(as with strategy ddp)", flush=True)  # fmt: skip
    return base | trainer_args(parallel, on_gpu)


def build_rewards(
    stage, reward_model: str | None = None, models: dict[str, str] | None = None
) -> tuple[list, list, dict]:
    """The stage's reward functions (group-aware ones see their whole group across processes),
    those that score with the live policy, and the stateful ones by name (their state is checkpointed).
    `reward_model`: the folder of the scorer that rewards reading one score with; `models`: where each model config
    a reward reads lies (StageJob.models)."""
    funcs, policy, stateful = [], [], {}
    for spec in stage.rewards:
        factory = REWARDS.get(spec.name)
        supplied = {"model": reward_model} if factory.needs_trained_model else {}
        if factory.reads_model:
            if spec.args["model"] not in (models or {}):
                raise ValueError(
                    f"reward {spec.name!r} reads model {spec.args['model']!r}, which the job was not given"
                )
            supplied = {"location": models[spec.args["model"]]}
        fn = factory.build(**spec.args | supplied)
        if factory.needs_policy:
            policy.append(fn)
        if factory.stateful:
            stateful[spec.name] = fn
        funcs.append(across_processes(fn) if factory.group_aware else fn)
    return funcs, policy, stateful


def split_rows(job: StageJob):
    """The stage's rows from its dataset split (harness.stages.data.stage_rows), each prompt followed by the stage's
    instruction and wrapped in the model's chat template when the stage asks for them."""
    from harness.stages.data import chat_prompts, stage_rows

    stage = job.stage
    rows = stage_rows(job.dataset, stage.data, stage.data_args, job.data_dir)
    if stage.args.get("instruction"):
        from harness.stages.data import with_instruction

        rows = with_instruction(rows, stage.args["instruction"])
    if stage.args.get("apply_chat_template"):
        from transformers import AutoTokenizer

        rows = chat_prompts(rows, AutoTokenizer.from_pretrained(job.model))
    return rows


Builder = Callable[[StageJob, object, Path], object]


def fit(job: StageJob, build: Builder, rows=None, on_resume=None, after_save=None, record=None) -> dict:
    """Train (or resume) the trainer `build(job, rows, ckpt_dir)` makes; save its model; write train.json.

    `rows` are curated first when the stage's data_args ask for it (harness.stages.curation), then given their
    solution prefixes (data_args.solution_prefix).
    `on_resume(trainer, checkpoint)` restores what the trainer keeps beside TRL's state; `after_save(model_dir)`
    writes what readers of the model need beside it; `record`: entries added to the summary (how it generated).
    Returns the summary (empty on ranks other than 0).
    """
    start, stage = time.time(), job.stage
    ckpt_dir = job.dir / CHECKPOINTS
    resume = prepare_checkpoints(ckpt_dir, checkpoint_key(job))
    print(f"stage {stage.kind} from {job.model}: " + (f"resuming from {resume}" if resume else "starting"), flush=True)
    if rows is not None and stage.data_args.lowest_likelihood is not None:
        from harness.stages.curation import lowest_likelihood

        rows = lowest_likelihood(rows, job.model, stage.data_args.lowest_likelihood)
    if rows is not None and stage.data_args.solution_prefix is not None:
        from harness.stages.data import solution_prefixes

        bare = rows["prompt"]
        rows = solution_prefixes(rows, stage.data_args.solution_prefix, stage.data_args.prefix_separator)
        moved = sum(a != b for a, b in zip(bare, rows["prompt"], strict=True))
        print(f"solution_prefix {stage.data_args.solution_prefix}: {moved} of {len(rows)} prompts end in a prefix "
              "of their solution", flush=True)  # fmt: skip
    trainer = build(job, rows, ckpt_dir)
    if resume and on_resume is not None:
        on_resume(trainer, resume)
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # one line per log instead of the whole dict
    trainer.add_callback(_progress_callback())
    trainer.add_callback(complete_checkpoints())
    if job.snapshot_steps:
        trainer.add_callback(_snapshot_callback(set(job.snapshot_steps), job.dir / SNAPSHOTS))
    trainer.train(resume_from_checkpoint=resume)
    mend_train_loss(trainer.state.log_history)
    model_dir = job.dir / MODEL
    trainer.save_model(str(model_dir))  # every rank takes part; rank 0 writes
    if not trainer.is_world_process_zero():
        return {}
    trainer.processing_class.save_pretrained(str(model_dir))
    if after_save is not None:
        after_save(model_dir)
    summary = {
        "kind": stage.kind,
        "init_model": job.model,
        "resumed_from": resume,
        "seconds": time.time() - start,
        "global_step": trainer.state.global_step,
        **(record or {}),
        "log_history": trainer.state.log_history,
    }
    write_atomic(job.dir / STAGE_SUMMARY, json.dumps(summary, indent=1))
    return summary


def mend_train_loss(history: list[dict]) -> None:
    """Set the end-of-training `train_loss` to the mean of the logged losses, each weighted by the steps it covers.

    transformers averages only the steps run since the last resume, so a preempted run would report another
    number than an uninterrupted one with the same per-step history; this one depends on that history alone.

    >>> h = [{"loss": 1.0, "step": 2}, {"loss": 4.0, "step": 3}, {"train_loss": 4.0, "step": 3}]
    >>> mend_train_loss(h); h[-1]["train_loss"]
    2.0
    """
    final = next((e for e in reversed(history) if "train_loss" in e), None)
    logged = [(e["step"], e["loss"]) for e in history if "loss" in e and "train_loss" not in e]
    if final is None or not logged:
        return
    total, previous = 0.0, 0
    for step, loss in logged:
        total, previous = total + loss * (step - previous), step
    final["train_loss"] = total / previous if previous else final["train_loss"]


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


def complete_checkpoints():
    from transformers import TrainerCallback

    class CompleteCheckpoint(TrainerCallback):
        """Marks a checkpoint complete once every process has saved its part (and the trainer its extras:
        harness.stages.trainers.grpo writes the reward state inside `_save_checkpoint`)."""

        def on_save(self, args, state, control, **kwargs):
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                dist.barrier()
            if state.is_world_process_zero:
                folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                write_atomic(folder / CHECKPOINT_DONE, json.dumps({"global_step": state.global_step}))

    return CompleteCheckpoint()


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
