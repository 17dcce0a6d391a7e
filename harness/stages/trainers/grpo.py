"""The one GRPO trainer: TRL's GRPOTrainer with the objective composed from registered pieces.

TRL generates, scores and logs; this subclass replaces three things, each with a registry lookup:
  - advantages: the stage's estimator (harness/algorithms/advantages.py) on the gathered rewards,
  - the loss: policy loss -> aggregation over the accumulation window, plus auxiliary terms,
  - sampling of paired rows (a question and its rewording land in the same batch).
Losses that read each completion's outcome and its group's accuracy (algorithms/supervised.py) get them per sample.
It also hands model-aware rewards a scorer over the live policy, keeps stateful rewards' state in every
checkpoint, so a resumed run continues with the same per-sample history, and filters and refills each batch's
prompt groups when the objective has an online filter (trainers/online.py).
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import torch
from trl import GRPOTrainer

from harness.algorithms import ADVANTAGES, AGGREGATIONS, AUX_TERMS, EXPERT_MIXES, POLICY_LOSSES, Window
from harness.algorithms.aux import AuxInputs
from harness.config.stage import ObjectiveConfig
from harness.layout import REWARD_STATE_FILE, write_atomic


class HarnessGRPOTrainer(GRPOTrainer):
    def __init__(self, *args, objective: ObjectiveConfig, policy_rewards=(), stateful_rewards=None, gates=(),
                 **kwargs):  # fmt: skip
        self.objective = objective
        self.gates = tuple(gates)
        """(term, gate) reward indices: term counts only where reward `gate` passes (RewardSpec.gated_by)."""
        self._advantage = partial(ADVANTAGES.get(objective.advantage.name), **objective.advantage.args)
        loss_fn = POLICY_LOSSES.get(objective.loss.name)
        self._needs_vocab_mean = getattr(loss_fn, "needs_vocab_mean", False)
        self._needs_outcomes = getattr(loss_fn, "needs_outcomes", False)
        self._policy_loss = partial(loss_fn, **objective.loss.args)
        self._aggregate = AGGREGATIONS.get(objective.aggregation)
        self._aux = [(a.name, partial(AUX_TERMS.get(a.name), **a.args)) for a in objective.aux]
        expert = objective.expert
        self._expert = partial(EXPERT_MIXES.get(expert.name), **expert.args) if expert is not None else None
        self.stateful_rewards = dict(stateful_rewards or {})
        super().__init__(*args, **kwargs)
        self.online = None
        if objective.online_filter is not None:
            from harness.stages.trainers.online import OnlineFilter

            self.online = OnlineFilter(objective.online_filter, self.train_dataset, self.num_generations,
                                       self.args.seed, self.accelerator.process_index)  # fmt: skip
        if policy_rewards:
            from harness.rewards.model import HFScorer

            scorer = HFScorer(self.accelerator.unwrap_model(self.model), self.processing_class)
            for fn in policy_rewards:
                fn.policy = scorer

    # ------------------------------------------------------------------ sampling

    def _get_train_sampler(self, dataset=None):
        """TRL's sampler (or its paired form, for paraphrased rows), resumable in any epoch (stages/samplers.py)."""
        from harness.stages.samplers import PairedRepeatSampler, ResumableRepeatSampler

        dataset = self.train_dataset if dataset is None else dataset
        shape = dict(
            mini_repeat_count=self.num_generations,
            batch_size=self.args.generation_batch_size // self.num_generations,
            repeat_count=self.num_iterations * self.args.steps_per_generation,
            shuffle=self.shuffle_dataset,
            seed=self.args.seed,
        )
        if "pair" in dataset.column_names:
            return PairedRepeatSampler(pairs=list(dataset["pair"]), **shape)
        return ResumableRepeatSampler(data_source=dataset, **shape)

    # ------------------------------------------------------------------ advantages

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        for term, gate in self.gates:  # a gated term counts where its gate passes (NaN: unscored, not passed)
            passed = rewards_per_func[:, gate].nan_to_num(0.0) >= 0.5
            rewards_per_func[:, term] = torch.where(passed, rewards_per_func[:, term], 0.0)
        self._gathered_rewards = rewards_per_func  # (N over all processes, n_funcs)
        return rewards_per_func

    def _generate_and_score_completions(self, inputs):
        if self.online is not None and self.model.training:  # filtered and refilled (trainers/online.py)
            return self.online.batch(self, inputs)
        return self._scored(inputs)

    def _scored(self, inputs):
        """TRL's generated and scored batch with the stage's advantages (and the rewards they came from, gathered
        over processes, kept as `_last_rewards`)."""
        out = super()._generate_and_score_completions(inputs)
        if self.objective.masked_spans:
            out["tool_mask"] = self._span_mask(out)
        per_func = self._gathered_rewards
        rewards = (per_func * self.reward_weights.to(per_func.device)).nansum(dim=1)
        rewards[torch.isnan(per_func).all(dim=1)] = torch.nan  # unscorable by every reward: advantage 0
        self._last_rewards = rewards
        mask = out["completion_mask"]
        lengths = self.accelerator.gather(mask.sum(dim=1))
        group = self.num_generations if self.model.training else self.num_generations_eval
        adv = self._advantage(rewards, group, lengths)
        local = slice(self.accelerator.process_index * len(mask), (self.accelerator.process_index + 1) * len(mask))
        adv = adv[local]
        if adv.dim() == 2:  # per-token: fit to this process's padded width
            width = mask.size(1)
            adv = torch.nn.functional.pad(adv[:, :width], (0, max(0, width - adv.size(1))))
        out["advantages"] = adv.to(mask.device)
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["advantage/abs_mean"].append(adv.abs().mean().item())
        group_accuracy = rewards.view(-1, group).mean(1).repeat_interleave(group)[local]
        if self._expert is not None:
            out |= self._expert_inputs(inputs, group_accuracy, mask)
        if self._needs_outcomes:  # per sample, from the whole group: the batch is shuffled and split after this
            out["outcome"] = rewards[local].nan_to_num(0.0).to(mask.device)
            out["group_accuracy"] = group_accuracy.nan_to_num(0.0).to(mask.device)
        if self._needs_vocab_mean:  # the sampling policy's mean log-prob over the vocabulary, for the next-state term
            out["old_vocab_mean_logps"] = self._vocab_mean_logps(self.model, out)
        return out

    def _span_mask(self, out: dict) -> torch.Tensor:
        """The completion tokens outside the objective's masked spans (times any tool mask already there), each
        token located by its own decoded text (harness/algorithms/spans.py); logs the share of tokens masked."""
        from harness.algorithms.spans import span_mask

        ids, mask = out["completion_ids"], out["completion_mask"]
        keep = torch.ones_like(mask)
        for row, (seq, valid) in enumerate(zip(ids.tolist(), mask.tolist(), strict=True)):
            n = int(sum(valid))
            pieces = self.processing_class.batch_decode([[t] for t in seq[:n]])
            keep[row, :n] = torch.tensor(span_mask(pieces, self.objective.masked_spans), dtype=keep.dtype)
        if "tool_mask" in out:
            keep = keep * out["tool_mask"]
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["masked_spans/share"].append(1.0 - self._masked_mean(keep.float(), mask.float()))
        return keep

    # ------------------------------------------------------------------ expert demonstrations

    def _expert_inputs(self, rows: list[dict], group_accuracy: torch.Tensor, like: torch.Tensor) -> dict:
        """Each sample's expert demonstration (the row's gold solution, else its answer, then EOS) as right-padded
        ids, and its group's mean reward (the accuracy when the reward is 0/1)."""
        tok = self.processing_class
        demos = [tok(str(r.get("solution") or r["answer"]), add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
                 for r in rows]  # fmt: skip
        width = max(map(len, demos))
        ids = torch.tensor([d + [tok.pad_token_id] * (width - len(d)) for d in demos], device=like.device)
        mask = torch.tensor([[1] * len(d) + [0] * (width - len(d)) for d in demos], device=like.device)
        return {
            "expert_ids": ids,
            "expert_mask": mask,
            "group_accuracy": group_accuracy.nan_to_num(0.0).to(like.device),
        }

    def _expert_term(self, model, inputs, window: Window) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-sample weight of the RL loss (B, 1), the weighted SFT loss on the expert demonstrations).

        The SFT loss of a sample is the mean negative log-likelihood of its demonstration's tokens (times the
        mix's token weights), summed over samples with the mix's weights and divided by the window's sequences."""
        e_ids, e_mask = inputs["expert_ids"], inputs["expert_mask"].float()
        ids = torch.cat([inputs["prompt_ids"], e_ids], dim=1)
        attn = torch.cat([inputs["prompt_mask"], inputs["expert_mask"]], dim=1)
        logps, _, _ = self._get_per_token_logps_and_entropies(model, ids, attn, e_ids.size(1))  # (B, Te)
        rl_w, sft_w, tok_w = self._expert(step=self.state.global_step, max_steps=self.state.max_steps,
                                          group_accuracy=inputs["group_accuracy"], expert_logps=logps.detach() * e_mask)  # fmt: skip
        nll = -(tok_w * logps * e_mask).sum(1) / e_mask.sum(1).clamp(min=1.0)  # (B,)
        metrics = self._metrics["train" if self.model.training else "eval"]
        metrics["expert/sft_weight"].append(sft_w.mean().item())
        metrics["expert/nll"].append((-(logps.detach() * e_mask).sum(1) / e_mask.sum(1).clamp(min=1.0)).mean().item())
        return rl_w.unsqueeze(1), (sft_w * nll).sum() / window.sequences

    # ------------------------------------------------------------------ loss

    VOCAB_MEAN_ROWS, VOCAB_MEAN_POSITIONS = 2, 512
    """_vocab_mean_logps runs this many sequences per forward pass and applies the LM head to this many positions
    at a time: only (rows x positions x vocabulary) logits are alive at once."""

    @torch.no_grad()
    def _vocab_mean_logps(self, model, inputs) -> torch.Tensor:
        """(B, T) mean over the vocabulary of the log-probs (temperature-scaled) at every completion position:
        mean(z) - logsumexp(z) of the logits z / temperature, from the final hidden states through the LM head a
        block of positions at a time (no gradient flows through it: the loss uses it as a stop-gradient target)."""
        from torch.distributed.tensor import DTensor

        ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
        attn = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        t = inputs["completion_ids"].size(1)
        head = self.accelerator.unwrap_model(model).get_output_embeddings()
        out = []
        for start in range(0, ids.size(0), self.VOCAB_MEAN_ROWS):
            rows = slice(start, start + self.VOCAB_MEAN_ROWS)
            hidden = model(input_ids=ids[rows], attention_mask=attn[rows], output_hidden_states=True,
                           logits_to_keep=1).hidden_states[-1][:, -t - 1 : -1]  # fmt: skip
            weight, bias = head.weight, head.bias
            if isinstance(weight, DTensor):  # sharded (FSDP2) outside the model's forward: gather the head
                weight = weight.full_tensor()
                bias = bias.full_tensor() if isinstance(bias, DTensor) else bias
            means = []
            for p in range(0, t, self.VOCAB_MEAN_POSITIONS):
                z = torch.nn.functional.linear(hidden[:, p : p + self.VOCAB_MEAN_POSITIONS], weight, bias)
                z = z.float() / self.temperature
                means.append(z.mean(-1) - torch.logsumexp(z, dim=-1))
            out.append(torch.cat(means, dim=1))
        return torch.cat(out)

    def _window(self, inputs, batch: int) -> Window:
        training = self.model.training
        accumulation = self.current_gradient_accumulation_steps if training else 1
        tokens = inputs["num_items_in_batch"].clamp(min=1.0).item() / self.accelerator.num_processes
        if training:  # num_items_in_batch counts the whole generation batch: scale it to one optimizer step
            tokens *= accumulation / self.args.steps_per_generation
        return Window(tokens=tokens, sequences=batch * accumulation, max_length=self.max_completion_length)

    def _compute_loss(self, model, inputs):
        completion_ids, mask = inputs["completion_ids"], inputs["completion_mask"]
        if "tool_mask" in inputs:
            mask = mask * inputs["tool_mask"]
        extra = {}
        ids = torch.cat([inputs["prompt_ids"], completion_ids], dim=1)
        attn = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        logps, entropies, _ = self._get_per_token_logps_and_entropies(
            model, ids, attn, completion_ids.size(1), compute_entropy=True
        )
        if self._needs_vocab_mean:
            mean = self._vocab_mean_logps(model, inputs)
            extra = {"vocab_mean_logps": mean, "old_vocab_mean_logps": inputs.get("old_vocab_mean_logps", mean)}
        if self.objective.top_entropy_quantile < 1.0:  # forking tokens only
            mask = mask * self.get_high_entropy_mask(entropies, mask, 1 - self.objective.top_entropy_quantile)
        old = inputs.get("old_per_token_logps")
        old = logps.detach() if old is None else old
        adv = inputs["advantages"]
        adv = adv.unsqueeze(1) if adv.dim() == 1 else adv
        if self._needs_outcomes:
            extra |= {"outcome": inputs["outcome"], "group_accuracy": inputs["group_accuracy"],
                      "group_size": self.num_generations if self.model.training else self.num_generations_eval}  # fmt: skip
        per_token = self._policy_loss(logps, old, adv, mask, **extra)
        if "importance_sampling_ratio" in inputs:  # vLLM sampled: correct for its mismatch with this model
            per_token = per_token * inputs["importance_sampling_ratio"]
        window = self._window(inputs, completion_ids.size(0))
        sft_loss = None
        if self._expert is not None:
            rl_weight, sft_loss = self._expert_term(model, inputs, window)
            per_token = per_token * rl_weight
        loss = self._aggregate(per_token, mask, window)
        mode = "train" if self.model.training else "eval"
        metrics = self._metrics[mode]
        metrics["policy_loss"].append(loss.item())
        if sft_loss is not None:
            loss = loss + sft_loss
        aux_inputs = AuxInputs(logps=logps, entropies=entropies, ref_logps=inputs.get("ref_per_token_logps"))
        for name, term in self._aux:
            value = self._aggregate(term(aux_inputs), mask, window)
            metrics[f"aux/{name}"].append(value.item())
            loss = loss + value
        full = inputs["completion_mask"].float()
        metrics["entropy"].append(self._masked_mean(entropies.detach(), full))
        if aux_inputs.ref_logps is not None:
            d = aux_inputs.ref_logps - logps.detach()
            metrics["kl"].append(self._masked_mean(torch.exp(d) - d - 1, full))
        ratio = torch.exp(logps.detach() - old)
        metrics["ratio/max"].append(self.accelerator.gather(ratio.max()).max().item())
        return loss

    def _masked_mean(self, x: torch.Tensor, mask: torch.Tensor) -> float:
        totals = self.accelerator.reduce(torch.stack([(x * mask).sum(), mask.sum()]), reduction="sum")
        return (totals[0] / totals[1].clamp(min=1.0)).item()

    # ------------------------------------------------------------------ stateful rewards

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        folder = Path(self._get_output_dir(trial)) / f"checkpoint-{self.state.global_step}"
        if self.online is not None:  # every process: its own statistics
            self.online.save(folder)
        if self.stateful_rewards and self.is_world_process_zero():
            state = {name: fn.state_dict() for name, fn in self.stateful_rewards.items()}
            write_atomic(folder / REWARD_STATE_FILE, json.dumps(state))

    def load_reward_state(self, checkpoint: str | Path) -> None:
        """Restore stateful rewards and the online filter's statistics from a checkpoint folder written by
        `_save_checkpoint`."""
        if self.online is not None:
            self.online.load(Path(checkpoint))
        file = Path(checkpoint) / REWARD_STATE_FILE
        if not self.stateful_rewards:
            return
        if not file.is_file():
            raise FileNotFoundError(f"{file} missing: cannot resume stateful rewards {list(self.stateful_rewards)}")
        state = json.loads(file.read_text())
        for name, fn in self.stateful_rewards.items():
            fn.load_state_dict(state[name])
