"""The SFT stage's trainer: TRL's SFTTrainer, with Intuitive Fine-Tuning's temporal residual when asked for.

With `temporal_residual` (lambda) set, each step runs one forward pass without gradient to get the model's
expected next-token embedding at every position, blends it into the answer positions' input embeddings
(harness/algorithms/intuition.py) and takes the usual next-token loss on the answer tokens from the blended
inputs. Unset, the loss is TRL's own.
"""

from __future__ import annotations

import torch
from trl import SFTTrainer

from harness.algorithms.intuition import temporal_residual


class HarnessSFTTrainer(SFTTrainer):
    def __init__(self, *args, temporal_residual: float | None = None, **kwargs):
        self.temporal_residual = temporal_residual
        super().__init__(*args, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.temporal_residual is None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        ids, attn, labels = inputs["input_ids"], inputs["attention_mask"], inputs["labels"]
        table = model.get_input_embeddings()
        with torch.no_grad():
            probs = torch.softmax(model(input_ids=ids, attention_mask=attn).logits.float(), dim=-1)  # (B, T, V)
            predicted = (probs @ table.weight.float()).to(table.weight.dtype)  # (B, T, H)
        embeds = temporal_residual(table(ids), predicted, labels != -100, self.temporal_residual)
        logits = model(inputs_embeds=embeds, attention_mask=attn).logits[:, :-1]  # (B, T-1, V)
        targets = labels[:, 1:]
        tokens = (targets != -100).sum() if num_items_in_batch is None else num_items_in_batch
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100,
                                                 reduction="sum") / torch.as_tensor(tokens).clamp(min=1)  # fmt: skip
        self._metrics["train" if model.training else "eval"]["temporal_residual"].append(self.temporal_residual)
        return (loss, None) if return_outputs else loss
