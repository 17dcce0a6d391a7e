"""A reward read from a model trained by an earlier `reward_model` stage (Easy-to-Hard's learned verifier).

The text scored is the prompt, the completion and the tokenizer's EOS, tokenized as TRL's RewardTrainer
tokenized the pairs it trained on, so training and scoring see the same sequences.
"""

from __future__ import annotations

from harness.rewards import register_reward


class LearnedReward:
    """Scalar head of a sequence classifier over prompt + completion; batched, no_grad, loaded on first use."""

    def __init__(self, model: str, batch_size: int = 32) -> None:
        self.path, self.batch_size = model, batch_size
        self._model = self._tokenizer = None

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        cuda = torch.cuda.is_available()  # at paper scale the scorer shares the policy's GPU
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


@register_reward("learned_reward", needs_labels=False, needs_trained_model=True)
def learned_reward(model: str) -> LearnedReward:
    """The scalar score of the latest reward_model stage's model (`model` is filled in by the harness)."""
    return LearnedReward(model)
