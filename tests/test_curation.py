"""harness.stages.curation: the starting model's likelihood of each reference solution, and the hardest rows kept."""

from __future__ import annotations

import datasets
import pytest
import torch

from harness.stages.curation import keep_lowest, lowest_likelihood, solution_logprobs
from harness.world.splits import read_split


@pytest.fixture(scope="module")
def model_and_rows(world):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root, _ = world
    tok = AutoTokenizer.from_pretrained(root / "model")
    model = AutoModelForCausalLM.from_pretrained(root / "model")
    return root, tok, model, read_split(root / "data", "train")[:12]


def test_solution_logprob_is_the_mean_token_logprob_of_target_and_eos(model_and_rows):
    _, tok, model, rows = model_and_rows
    prompt, target = rows[0]["prompt"], rows[0]["answer"]
    p = tok(prompt, add_special_tokens=False).input_ids
    t = tok(target + tok.eos_token, add_special_tokens=False).input_ids
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([p + t])).logits[0], -1)
    by_hand = sum(logp[len(p) + i - 1, tok_id].item() for i, tok_id in enumerate(t)) / len(t)
    assert solution_logprobs(model, tok, [prompt], [target]) == [pytest.approx(by_hand, abs=1e-5)]


def test_batching_and_padding_do_not_change_scores(model_and_rows):
    _, tok, model, rows = model_and_rows
    prompts, targets = [r["prompt"] for r in rows], [r["answer"] for r in rows]
    one_by_one = [solution_logprobs(model, tok, [p], [t])[0] for p, t in zip(prompts, targets, strict=True)]
    assert solution_logprobs(model, tok, prompts, targets, batch_size=5) == pytest.approx(one_by_one, abs=1e-5)


def test_lowest_likelihood_keeps_the_hardest_fraction_in_order(model_and_rows):
    root, tok, model, rows = model_and_rows
    ds = datasets.Dataset.from_list(rows)
    scores = solution_logprobs(model, tok, ds["prompt"], ds["answer"])
    kept = lowest_likelihood(ds, str(root / "model"), 0.25)
    assert len(kept) == 3
    hardest = sorted(range(len(scores)), key=scores.__getitem__)[:3]
    assert list(kept["id"]) == [rows[i]["id"] for i in sorted(hardest)]
    assert len(keep_lowest(ds, scores, 0.01)) == 1  # never empty
