"""Model-aware rewards: the policy itself scores the gold answer after the completion's reasoning.

The trainer attaches the policy as `fn.policy`, a `PolicyScorer` (`HFScorer` wraps a transformers
model). Departures from the papers:
- RLPR also debiases the reward (subtracting the probability of the answer without reasoning) and
  filters prompts by reward std; VeriFree also trains on the gold answer's likelihood (an SFT term).
  Neither is a reward, so neither is here.
- The answer is located by the shared grader (content of the last `\\boxed{...}`, else the last
  number), not by answer tags; the gold answer replaces it right where the policy wrote it.
"""

from __future__ import annotations

import inspect
import math

from harness.grader import answer_span
from harness.rewards import PolicyScorer, register_reward


class HFScorer:
    """`PolicyScorer` over a transformers causal LM: batched, no_grad, in eval mode (then restored).

    Context and target are tokenized separately, without special tokens, and their ids concatenated,
    so the target's tokens are exactly its own tokenization. An empty context starts from the bos
    token, as something has to predict the first target token.
    """

    def __init__(self, model, tokenizer, batch_size: int = 8) -> None:
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size

    def logprobs(self, contexts: list[str], targets: list[str]) -> list[list[float]]:
        """log p(target_t | context, target_<t) for each pair: one list as long as the target's tokens."""
        import torch

        if len(contexts) != len(targets):
            raise ValueError(f"HFScorer: {len(contexts)} contexts but {len(targets)} targets")
        pairs = [self._ids(c, t) for c, t in zip(contexts, targets, strict=True)]
        was_training = self.model.training
        self.model.eval()  # no dropout: the score of a text must not be random
        try:
            with torch.no_grad():
                out: list[list[float]] = []
                for k in range(0, len(pairs), self.batch_size):
                    out += self._score(pairs[k : k + self.batch_size])
        finally:
            self.model.train(was_training)
        return out

    def _ids(self, context: str, target: str) -> tuple[list[int], list[int]]:
        ctx = self.tokenizer(context, add_special_tokens=False)["input_ids"]
        tgt = self.tokenizer(target, add_special_tokens=False)["input_ids"]
        if not ctx and tgt:
            if self.tokenizer.bos_token_id is None:
                raise ValueError("HFScorer: an empty context needs a bos token to predict the first target token")
            ctx = [self.tokenizer.bos_token_id]
        return ctx, tgt

    def _score(self, pairs: list[tuple[list[int], list[int]]]) -> list[list[float]]:
        import torch

        scored = [(c, t) for c, t in pairs if t]
        if not scored:
            return [[] for _ in pairs]
        device = next(self.model.parameters()).device
        width = max(len(c) + len(t) for c, t in scored)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(scored), width), pad, dtype=torch.long)
        mask = torch.zeros((len(scored), width), dtype=torch.long)
        for b, (c, t) in enumerate(scored):  # right padding: positions are the same as unpadded
            ids[b, : len(c) + len(t)] = torch.tensor(c + t)
            mask[b, : len(c) + len(t)] = 1
        # logits only from the first position that predicts a target token: the vocabulary is large
        first = min(len(c) for c, _ in scored) - 1
        extra = {"logits_to_keep": width - first} if _accepts_logits_to_keep(self.model) else {}
        logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False, **extra).logits
        offset = width - logits.shape[1]  # logits: (B, width - offset, V)
        scores = iter(
            logits[b, len(c) - 1 - offset : len(c) - 1 - offset + len(t)]  # (len t, V): the target's predictions
            .float()
            .log_softmax(-1)
            .gather(-1, torch.tensor(t, device=logits.device)[:, None])[:, 0]
            .tolist()
            for b, (c, t) in enumerate(scored)
        )
        return [next(scores) if t else [] for _, t in pairs]


def _accepts_logits_to_keep(model) -> bool:
    return "logits_to_keep" in inspect.signature(model.forward).parameters


def reasoning(completion: str) -> str:
    r"""The completion before its final answer (the whole completion when it has none).

    >>> reasoning("2 + 2 is \\boxed{4}.")
    '2 + 2 is \\boxed{'
    >>> reasoning("no answer")
    'no answer'
    """
    span = answer_span(completion)
    return completion[: span[0]] if span else completion


def mean_probability(logprobs: list[float]) -> float:
    """RLPR's reward: the per-token mean probability (1/T) sum_t exp(logp_t).

    >>> round(mean_probability([math.log(0.5), math.log(1.0)]), 6)
    0.75
    """
    return sum(math.exp(lp) for lp in logprobs) / len(logprobs)


def sequence_probability(logprobs: list[float]) -> float:
    """VeriFree's reward: the likelihood of the whole answer, prod_t p_t = exp(sum_t logp_t).

    >>> round(sequence_probability([math.log(0.5), math.log(0.5)]), 6)
    0.25
    """
    return math.exp(sum(logprobs))


_AGGREGATES = {"mean": mean_probability, "product": sequence_probability}


class ReferenceProbability:
    """r = aggregate_t p_policy(gold_t | prompt + reasoning z, gold_<t); None when there is no gold answer.

    Set `policy` (a `PolicyScorer`) before calling.
    """

    def __init__(self, aggregate: str = "mean") -> None:
        if aggregate not in _AGGREGATES:
            raise ValueError(f"reference_probability: unknown aggregate {aggregate!r}; choose from {list(_AGGREGATES)}")
        self.aggregate = aggregate
        self.policy: PolicyScorer | None = None

    def __call__(
        self, completions: list[str], answer: list, prompts: list | None = None, prompt: list | None = None, **_
    ) -> list[float | None]:
        if self.policy is None:
            raise RuntimeError(
                f"{getattr(self, '__name__', 'reference_probability')} scores with the policy: set `fn.policy` "
                "to a PolicyScorer (e.g. HFScorer(model, tokenizer)) before calling it"
            )
        texts = prompts if prompts is not None else prompt  # TRL passes `prompts`, a bare call `prompt`
        if texts is None:
            raise ValueError("reference_probability needs the prompts (`prompts` or `prompt`)")
        if not all(isinstance(p, str) for p in texts):
            raise TypeError("reference_probability scores text prompts; conversational prompts are not supported")
        rows = [i for i, a in enumerate(answer) if a is not None]
        contexts = [texts[i] + reasoning(completions[i]) for i in rows]
        scores = self.policy.logprobs(contexts, [str(answer[i]) for i in rows])
        rewards: list[float | None] = [None] * len(completions)
        for i, lps in zip(rows, scores, strict=True):
            rewards[i] = _AGGREGATES[self.aggregate](lps) if lps else None
        return rewards


@register_reward("reference_probability", needs_labels=True, needs_policy=True)
def reference_probability(aggregate: str = "mean") -> ReferenceProbability:
    """Verifier-free reward: the policy's probability of the gold answer after its own reasoning.

    aggregate="mean": RLPR, r = (1/T) sum_t p_t; aggregate="product": VeriFree, r = prod_t p_t.
    """
    return ReferenceProbability(aggregate)
