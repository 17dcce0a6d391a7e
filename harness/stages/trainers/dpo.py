"""The dpo stage's trainer when the stage names a registered `preference_loss`: TRL's DPOTrainer whose
loss is that piece (harness/algorithms/preference.py).

`HarnessDPOTrainer` computes sequence log-probs with TRL's forward and hands them, with the judge's
scores, the prompt's mean score and the gold solution's log-prob, to the loss.
"""

from __future__ import annotations

from functools import partial

import torch
from trl import DPOTrainer
from trl.trainer.dpo_trainer import DataCollatorForPreference

from harness.algorithms import PREFERENCE_LOSSES
from harness.algorithms.preference import PairBatch

SCALARS = ("chosen_score", "rejected_score", "baseline")


class PairCollator(DataCollatorForPreference):
    """TRL's preference collator, plus the judge's scalars and the gold solution as a third sequence."""

    def torch_call(self, examples: list[dict]) -> dict:
        out = super().torch_call(examples)
        for key in SCALARS:
            if key in examples[0]:
                out[key] = torch.tensor([float(e[key]) for e in examples])
        if "gold_ids" in examples[0]:
            seqs = [e["prompt_ids"] + e["gold_ids"] for e in examples]
            width = max(map(len, seqs))
            out["gold_input_ids"] = torch.tensor([s + [self.pad_token_id] * (width - len(s)) for s in seqs])
            out["gold_attention_mask"] = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
            out["gold_completion_mask"] = torch.tensor(
                [
                    [0] * len(e["prompt_ids"]) + [1] * len(e["gold_ids"]) + [0] * (width - len(s))
                    for e, s in zip(examples, seqs, strict=True)
                ]  # fmt: skip
            )
        return out


class HarnessDPOTrainer(DPOTrainer):
    """TRL's DPOTrainer whose loss is a registered preference loss (harness/algorithms/preference.py)."""

    def __init__(self, *args, preference_loss, **kwargs):
        self._loss = partial(PREFERENCE_LOSSES.get(preference_loss.name), **preference_loss.args)
        super().__init__(*args, **kwargs)
        tok = self.processing_class
        self.data_collator = PairCollator(pad_token_id=tok.pad_token_id, max_length=self.args.max_length)

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        self._signature_columns = list(self._signature_columns) + [*SCALARS, "gold_ids"]

    def _sequence_logps(self, model, ids, attn, completion_mask) -> tuple[torch.Tensor, torch.Tensor]:
        """(summed log-prob of each completion, its token count) with TRL's fused log-prob forward."""
        labels = ids.masked_fill(completion_mask == 0, -100)
        out = model(input_ids=ids, attention_mask=attn, labels=labels, use_cache=False, fused_lm_head=True)
        mask = completion_mask[:, 1:].float()  # (B, T-1): token t+1 predicted at t
        per_token = out.log_probs[:, -mask.size(1) :]
        return (per_token * mask).sum(1), mask.sum(1)

    def _compute_loss(self, model, inputs, return_outputs):
        ids, attn, cm = inputs["input_ids"], inputs["attention_mask"], inputs["completion_mask"]
        logps, lengths = self._sequence_logps(model, ids, attn, cm)
        chosen, rejected = logps.chunk(2)  # the batch is [chosen..., rejected...]
        len_c, len_r = lengths.chunk(2)
        ref_c, ref_r = inputs.get("ref_chosen_logps"), inputs.get("ref_rejected_logps")  # precomputed by TRL
        if ref_c is None and self.ref_model is not None:
            with torch.no_grad():
                ref, _ = self._sequence_logps(self.ref_model, ids, attn, cm)
            ref_c, ref_r = ref.chunk(2)
        gold = gold_len = None
        if "gold_input_ids" in inputs:
            gold, gold_len = self._sequence_logps(model, inputs["gold_input_ids"], inputs["gold_attention_mask"],
                                                  inputs["gold_completion_mask"])  # fmt: skip
        batch = PairBatch(chosen, rejected, len_c, len_r, ref_c, ref_r, inputs.get("chosen_score"),
                          inputs.get("rejected_score"), inputs.get("baseline"), gold, gold_len)  # fmt: skip
        loss = self._loss(batch).mean()
        metrics = self._metrics["train" if self.model.training else "eval"]
        metrics["logps/chosen"].append(self.accelerator.gather(chosen.detach()).mean().item())
        metrics["logps/rejected"].append(self.accelerator.gather(rejected.detach()).mean().item())
        metrics["rewards/accuracies"].append(self.accelerator.gather((chosen > rejected).float()).mean().item())
        return (loss, None) if return_outputs else loss
