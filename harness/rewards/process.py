"""A reward read from a process reward model an earlier stage trained (Easy-to-Hard).

The completion is cut into steps and encoded exactly as the stage encoded its training examples
(harness/rewards/steps.py); the score aggregates p(step right) over the steps.
"""

from __future__ import annotations

from harness import device
from harness.layout import STEP_SCORER_FILE
from harness.rewards import register_reward
from harness.rewards.steps import encode, split_steps

AGGREGATES = ("min", "product", "mean", "last")


def aggregate_steps(probs: list[float], how: str) -> float:
    """One score from the steps' p(right): min (the weakest step), product, mean or last; 0 without steps.

    >>> [aggregate_steps([0.9, 0.5], h) for h in ("min", "product", "mean", "last")], aggregate_steps([], "min")
    ([0.5, 0.45, 0.7, 0.5], 0.0)
    """
    if not probs:
        return 0.0
    if how == "min":
        return min(probs)
    if how == "product":
        out = 1.0
        for p in probs:
            out *= p
        return out
    return sum(probs) / len(probs) if how == "mean" else probs[-1]


def _check(aggregate: str = "min") -> None:
    if aggregate not in AGGREGATES:
        raise ValueError(f"process_reward: aggregate {aggregate!r} is not one of {', '.join(AGGREGATES)}")


class ProcessReward:
    """p(step right) at each step's last token, from the trained token classifier; batched, no_grad, lazy."""

    def __init__(self, model: str, aggregate: str, batch_size: int = 64) -> None:
        _check(aggregate)
        self.path, self.how, self.batch_size = model, aggregate, batch_size
        self._model = self._tokenizer = self.separator = None

    def _load(self) -> None:
        import json
        from pathlib import Path

        import torch
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        self.separator = json.loads((Path(self.path) / STEP_SCORER_FILE).read_text())["step_separator"]  # the stage's
        cuda = device.cuda()
        self._tokenizer = AutoTokenizer.from_pretrained(self.path)
        m = AutoModelForTokenClassification.from_pretrained(self.path, dtype=torch.bfloat16 if cuda else None)
        self._model = m.to("cuda" if cuda else "cpu").eval()

    def step_probs(self, completions: list[str], prompts: list[str]) -> list[list[float]]:
        import torch

        if self._model is None:
            self._load()
        encoded = [
            encode(self._tokenizer, p, split_steps(c, self.separator))
            for p, c in zip(prompts, completions, strict=True)
        ]
        out: list[list[float]] = []
        pad = self._tokenizer.pad_token_id if self._tokenizer.pad_token_id is not None else 0
        for k in range(0, len(encoded), self.batch_size):
            chunk = encoded[k : k + self.batch_size]
            width = max(len(ids) for ids, _ in chunk)
            ids = torch.tensor([i + [pad] * (width - len(i)) for i, _ in chunk], device=self._model.device)
            mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in chunk], device=self._model.device)
            with torch.no_grad():
                p_right = self._model(input_ids=ids, attention_mask=mask).logits.float().softmax(-1)[..., 1]  # (B, T)
            out += [[p_right[b, e].item() for e in ends] for b, (_, ends) in enumerate(chunk)]
        return out

    def __call__(self, completions: list[str], prompts: list[str], **_) -> list[float]:
        return [aggregate_steps(p, self.how) for p in self.step_probs(completions, prompts)]


@register_reward("process_reward", needs_labels=False, reads_scorer="steps", validate=_check)
def process_reward(model: str, aggregate: str = "min") -> ProcessReward:
    """r(x, y) = agg_t p(step t of y right | x, steps < t) under the latest process_reward_model stage's model
    (`aggregate`: min | product | mean | last; a completion with no step scores 0)."""
    return ProcessReward(model, aggregate)
