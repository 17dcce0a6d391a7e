"""A reward read from a model trained by an earlier `reward_model` stage (Easy-to-Hard's learned verifier).

The text scored is the prompt, the completion and the tokenizer's EOS, tokenized as TRL's RewardTrainer
tokenized the pairs it trained on, so training and scoring see the same sequences.
"""

from __future__ import annotations

from harness import device
from harness.layout import MIXTURE_FILE
from harness.rewards import register_reward


class LearnedReward:
    """Scalar head of a sequence classifier over prompt + completion; batched, no_grad, loaded on first use."""

    def __init__(self, model: str, batch_size: int = 32) -> None:
        self.path, self.batch_size = model, batch_size
        self._model = self._tokenizer = None

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        cuda = device.cuda()  # at paper scale the scorer shares the policy's GPU
        self._tokenizer = AutoTokenizer.from_pretrained(self.path)
        model = AutoModelForSequenceClassification.from_pretrained(self.path, dtype=torch.bfloat16 if cuda else None)
        self._model = model.to("cuda" if cuda else "cpu").eval()

    def __call__(self, completions: list[str], prompts: list[str], **_) -> list[float]:
        import torch

        if self._model is None:
            self._load()
        tok = self._tokenizer
        texts = [p + c + tok.eos_token for p, c in zip(prompts, completions, strict=True)]
        scores: list[float] = []
        with torch.no_grad():
            for k in range(0, len(texts), self.batch_size):
                batch = tok(texts[k : k + self.batch_size], return_tensors="pt", padding=True).to(self._model.device)
                scores += self._model(**batch).logits[:, 0].float().tolist()
        return scores


@register_reward("learned_reward", needs_labels=False, reads_scorer="sequence")
def learned_reward(model: str) -> LearnedReward:
    """The scalar score of the latest reward_model stage's model (`model` is filled in by the harness)."""
    return LearnedReward(model)


class WorstGroupReward:
    """The mixture of a reward_model stage with num_groups (harness/stages/reward_mixture.py), scored egalitarian-style;
    loaded on first use."""

    def __init__(self, model: str) -> None:
        self.path = model
        self.groups = self.scorers = None

    def _load(self) -> None:
        import json
        from pathlib import Path

        file = Path(self.path) / MIXTURE_FILE
        if not file.is_file():
            raise ValueError(f"{file}: not found; worst_group_reward reads a reward_model stage with num_groups >= 2")
        self.groups = json.loads(file.read_text())["groups"]
        self.scorers = [LearnedReward(str(Path(self.path) / f"group{k}")) for k in range(len(self.groups))]

    def __call__(self, completions: list[str], prompts: list[str], log_metric=None, **_) -> list[float]:
        if self.scorers is None:
            self._load()
        z = [
            standardize(s(completions, prompts), g["mean"], g["std"])
            for s, g in zip(self.scorers, self.groups, strict=True)
        ]
        k = worst_group(z)
        if log_metric is not None:
            log_metric("worst_group/index", float(k))
            for j, zj in enumerate(z):
                log_metric(f"worst_group/mean_z{j}", sum(zj) / len(zj))
        return z[k]


def standardize(scores: list[float], mean: float, std: float) -> list[float]:
    """Scores standardized by the model's own mean and std over its training pairs (comparable across groups).

    >>> standardize([1.0, 3.0], mean=2.0, std=0.5)
    [-2.0, 2.0]
    """
    return [(s - mean) / std for s in scores]


def worst_group(z: list[list[float]]) -> int:
    """The group whose standardized reward, averaged over the batch, is lowest (ties: the first).

    >>> worst_group([[0.5, 0.1], [-0.2, 0.3], [0.0, 0.05]])
    2
    """
    means = [sum(zk) / len(zk) for zk in z]
    return min(range(len(z)), key=lambda k: (means[k], k))


@register_reward("worst_group_reward", needs_labels=False, group_aware=True, reads_scorer="mixture")
def worst_group_reward(model: str) -> WorstGroupReward:
    """MaxMin-RLHF's egalitarian reward: with z_k(x, y) = (r_k(x, y) - mu_k) / sigma_k, the standardized score
    of group k's reward model, the whole batch is rewarded by k* = argmin_k mean_batch z_k, the group the
    current policy serves worst (`model` is the latest reward_model stage's mixture, filled in by the harness).
    Group-aware: the argmin is over the batch gathered from every process."""
    return WorstGroupReward(model)
