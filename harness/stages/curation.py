"""Training-set curation with the stage's starting model: keep the problems it finds hardest.

`lowest_likelihood` scores each labeled row by the mean per-token log-probability of its reference
solution given the prompt (teacher forcing, one forward pass per batch) and keeps the lowest
fraction. This is the data-curation idea of the reasoning-boundary paper (SELF): spend RL updates
on problems whose correct solutions are unlikely under the base, where on-policy sampling would
otherwise let them be crowded out. Departure: the paper ranks problems by the base model's
likelihood of a correct solution; where a dataset has no worked solution, the final answer alone
is scored, which is a weaker proxy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import datasets


def solution_logprobs(model, tokenizer, prompts: list[str], targets: list[str], batch_size: int = 64) -> list[float]:
    """Mean log-probability per token of each target (followed by EOS) after its prompt."""
    import torch

    eos = tokenizer.eos_token or ""
    scores: list[float] = []
    model.eval()
    for i in range(0, len(prompts), batch_size):
        p_ids = [tokenizer(p, add_special_tokens=False).input_ids for p in prompts[i : i + batch_size]]
        t_ids = [tokenizer(t + eos, add_special_tokens=False).input_ids for t in targets[i : i + batch_size]]
        width = max(len(p) + len(t) for p, t in zip(p_ids, t_ids, strict=True))
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(p_ids), width), pad)
        mask = torch.zeros_like(ids)
        target = torch.zeros_like(ids, dtype=torch.bool)
        for j, (p, t) in enumerate(zip(p_ids, t_ids, strict=True)):  # right padding
            ids[j, : len(p) + len(t)] = torch.tensor(p + t)
            mask[j, : len(p) + len(t)] = 1
            target[j, len(p) : len(p) + len(t)] = True
        with torch.no_grad():
            logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None].to(model.device))[
            ..., 0
        ]  # (B, T-1)
        tmask = target[:, 1:].to(model.device)  # token t+1 is predicted at position t
        scores += ((logp * tmask).sum(-1) / tmask.sum(-1)).tolist()
    return scores


def keep_lowest(rows: datasets.Dataset, scores: list[float], fraction: float) -> datasets.Dataset:
    """The `fraction` of rows with the lowest scores (at least one), in their original order.

    >>> import datasets
    >>> list(keep_lowest(datasets.Dataset.from_list([{"id": i} for i in range(4)]), [0.1, -2.0, -0.5, 0.0], 0.5)["id"])
    [1, 2]
    """
    n = max(1, round(len(scores) * fraction))
    chosen = sorted(sorted(range(len(scores)), key=scores.__getitem__)[:n])
    return rows.select(chosen)


def lowest_likelihood(rows: datasets.Dataset, model_path: str, fraction: float) -> datasets.Dataset:
    """`rows` curated to the `fraction` whose reference solution `model_path` finds least likely."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path)
    targets = rows["solution"] if "solution" in rows.column_names else rows["answer"]
    scores = solution_logprobs(model, tokenizer, rows["prompt"], [str(t) for t in targets])
    kept = keep_lowest(rows, scores, fraction)
    print(f"lowest_likelihood {fraction}: kept {len(kept)} of {len(rows)} rows "
          f"(mean log-prob per token {sum(scores) / len(scores):.3f} overall)", flush=True)  # fmt: skip
    del model
    return kept
