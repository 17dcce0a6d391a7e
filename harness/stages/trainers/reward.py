"""The reward_model stage's trainer: TRL's RewardTrainer on (prompt, chosen, rejected) rows."""

from __future__ import annotations

from trl import RewardConfig, RewardTrainer


def reward_trainer(model: str, rows, common: dict, tokenizer) -> RewardTrainer:
    """A scalar head on the starting `model`, trained on `rows` (a datasets.Dataset of pairs)."""
    rows = rows.select_columns(["prompt", "chosen", "rejected"])
    return RewardTrainer(model=model, args=RewardConfig(**common), train_dataset=rows, processing_class=tokenizer)
