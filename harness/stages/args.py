"""Hyper-parameters every trainer-backed stage kind has, and the marker for the ones the harness keeps back
from TRL (every other field goes to TRL's config under its own name)."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from harness.config.errors import Invalid
from harness.config.typed import MAX_BATCH, MAX_STEPS, limited
from harness.device import ENGINES


def ours(default: Any = MISSING, *, default_factory: Any = MISSING, **limits: Any) -> Any:
    """A field the harness interprets itself: never passed to TRL (see `trl_args`); `limits` as in typed.limited."""
    if limits:
        return limited(default, default_factory=default_factory, metadata={"ours": True}, **limits)
    return field(default=default, default_factory=default_factory, metadata={"ours": True})


def kept_back(args_type: type) -> tuple[str, ...]:
    """The fields of an args dataclass that the harness interprets itself.

    >>> kept_back(TrainerArgs)
    ('global_batch_size', 'max_per_device_batch_size', 'apply_chat_template', 'instruction')
    """
    return tuple(f.name for f in fields(args_type) if f.metadata.get("ours"))


def trl_args(args_type: type, args: dict) -> dict:
    """`args` without the fields the harness keeps back: what goes to TRL's config."""
    held = set(kept_back(args_type))
    return {k: v for k, v in args.items() if k not in held}


@dataclass
class TrainerArgs:
    """Hyper-parameters every trainer-backed stage kind has, passed to TRL's config under the same names
    (except the fields marked `ours`)."""

    learning_rate: float = limited(1e-5, gt=0, le=1)
    max_steps: int = limited(500, ge=1, le=MAX_STEPS)
    global_batch_size: int | None = ours(None, ge=1, le=MAX_BATCH)
    """Completions (GRPO) or rows (SFT) per optimizer step over all GPUs; when set, per-device batch and
    gradient accumulation are derived from the GPUs granted (capped at max_per_device_batch_size)."""
    max_per_device_batch_size: int | None = ours(None, ge=1, le=MAX_BATCH)
    per_device_train_batch_size: int = limited(8, ge=1, le=MAX_BATCH)
    gradient_accumulation_steps: int = limited(1, ge=1, le=MAX_BATCH)
    warmup_steps: int = limited(0, ge=0, le=MAX_STEPS)
    apply_chat_template: bool = ours(False)
    instruction: str | None = ours(None)
    """Appended (after a blank line) to every prompt, before the chat template; the scale's `instruction` by default."""
    """Wrap each prompt in the model's chat template as a user turn, kept as text (chat models; evaluation
    suites have the same switch). SFT targets follow the turn, ended by the tokenizer's EOS."""
    save_steps: int = limited(50, ge=1, le=MAX_STEPS)
    logging_steps: int = limited(10, ge=1, le=MAX_STEPS)


def check_engine(args: dict) -> None:
    """A known generation engine (harness.device.ENGINES)."""
    if args.get("generation_engine", "auto") not in ENGINES:
        raise Invalid(
            "generation_engine", f"unknown engine {args['generation_engine']!r} (known: {', '.join(ENGINES)})"
        )
