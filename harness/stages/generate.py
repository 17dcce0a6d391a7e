"""The generate stage kind: sample completions from the current policy and label them with a judge.

The judge is the stage's rewards (weighted sum = a completion's score), so anything that can reward
a GRPO stage can label data: exact match, brevity, a model trained by a reward_model stage. Writes,
in the stage's folder:
  samples.jsonl  every prompt with its gold answer, its completions and their scores (a process_reward_model
                 stage labels their steps),
  pairs.jsonl    one (chosen, rejected) pair per prompt whose scores differ: the best and the worst
                 sample (ties: the shorter one is chosen, the longer one rejected; `large_gap_share` keeps
                 only the pairs whose score gap is largest), with both scores,
                 the prompt's mean score (`baseline`) and the gold solution (`gold`, for triple losses),
                 plus what a judge records about its labeling (`annotate(row)`: user_mixture's `labeler`),
  train.json     a summary, written last (the stage is complete when it exists).
Generation uses transformers' `generate` (vLLM at paper scale when `generation_engine` resolves to it).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

from harness.config.typed import MAX_BATCH, MAX_SAMPLES, MAX_TEMPERATURE, MAX_TOKENS, limited
from harness.layout import PAIRS_FILE, SAMPLES_FILE, STAGE_SUMMARY, write_atomic
from harness.stages.args import check_engine
from harness.stages.kind import DATA, SPLIT, UPSTREAM_SCORER, StageJob, StageKind


@dataclass
class GenerateArgs:
    """A generate stage: sample completions from the current policy and label them with the stage's rewards
    (the judge: weighted sum = score). Writes the samples and one (best, worst) pair per prompt."""

    num_samples: int = limited(8, ge=1, le=MAX_SAMPLES)
    """Completions per prompt."""
    temperature: float = limited(1.0, gt=0, le=MAX_TEMPERATURE)
    max_new_tokens: int = limited(1024, ge=1, le=MAX_TOKENS)
    max_prompts: int | None = limited(None, ge=1)
    """Use only the first `max_prompts` rows (after data_args); None: all."""
    batch_size: int = limited(64, ge=1, le=MAX_BATCH)
    """Prompts per generate call."""
    apply_chat_template: bool = False
    instruction: str | None = None
    """Appended (after a blank line) to every prompt, before the chat template; the scale's `instruction` by default."""
    generation_engine: str = "auto"
    """hf | vllm | auto (as in GRPOArgs; vLLM runs in-process, recorded as vllm_mode `offline`)."""
    large_gap_share: float | None = limited(None, gt=0, le=1)
    """Write only this share of the pairs (rounded up), those whose chosen - rejected score gap is largest: MPO's
    easy set, where the judge is surest. None: every pair."""


def memory(args: dict, objective) -> dict:
    """For the memory plan: sampling only, batch_size prompts x num_samples at a time after the prompt."""
    return {
        "samples": "offline",
        "prompt": True,
        "completion_tokens": args["max_new_tokens"],
        "generation_batch": args["batch_size"] * args["num_samples"],
    }


KIND = StageKind(
    "generate",
    GenerateArgs,
    reads=SPLIT,
    makes=DATA,
    entry="harness.stages.generate:run",
    rewards="required",
    rewards_role="reward (the judge that labels the samples)",
    check_args=check_engine,
    summary_numbers=("prompts", "pairs", "mean_score"),
    memory=memory,
)


def best_and_worst(completions: list[str], scores: list[float]) -> tuple[int, int] | None:
    """Indices of the chosen (best, then shortest) and rejected (worst, then longest) samples; None if all tie.

    >>> best_and_worst(["12", "1", "99", "123"], [1.0, 1.0, 0.0, 0.0])
    (1, 3)
    >>> best_and_worst(["a", "b"], [0.5, 0.5]) is None
    True
    """
    if max(scores) == min(scores):
        return None
    chosen = min(range(len(scores)), key=lambda i: (-scores[i], len(completions[i]), i))
    rejected = min(range(len(scores)), key=lambda i: (scores[i], -len(completions[i]), i))
    return chosen, rejected


def largest_gaps(pairs: list[dict], share: float | None) -> list[dict]:
    """The ceil(share x n) pairs with the largest chosen - rejected score gap, in their own order (a tie at the cut
    goes to the earlier pair); every pair when share is None.

    >>> gaps = [{"id": i, "chosen_score": c, "rejected_score": 0.0} for i, c in enumerate([0.2, 0.9, 0.5, 0.9])]
    >>> [p["id"] for p in largest_gaps(gaps, 0.5)], [p["id"] for p in largest_gaps(gaps, 0.1)]
    ([1, 3], [1])
    """
    if share is None:
        return pairs
    keep = math.ceil(share * len(pairs))
    ranked = sorted(range(len(pairs)), key=lambda i: (-(pairs[i]["chosen_score"] - pairs[i]["rejected_score"]), i))
    kept = set(ranked[:keep])
    return [p for i, p in enumerate(pairs) if i in kept]


def judge_scores(judges: list, weights: list[float], completions: list[str], rows: list[dict]) -> list[float]:
    """Weighted sum of the judges' rewards; each judge sees the rows' columns as reward keyword arguments.

    An unscorable sample (None from every judge) scores 0.
    """
    from harness.rewards import weighted_sum

    columns = {k: [r.get(k) for r in rows] for k in rows[0]} | {"prompts": [r["prompt"] for r in rows]}
    return weighted_sum(list(zip(weights, judges, strict=True)), completions, **columns)


def run(job: StageJob) -> dict:
    """Sample, judge and pair; returns the summary also written to train.json."""
    from harness.device import generation_record, resolve_engine
    from harness.stages.plumbing import build_rewards, split_rows

    start, stage, a = time.time(), job.stage, job.stage.args
    generation = generation_record(resolve_engine(a["generation_engine"]), "offline")  # refuses before any work
    model_path, seed, stage_dir = job.model, job.seed, job.dir
    rows = [dict(r) for r in split_rows(job)]
    rows = rows[: a["max_prompts"]] if a["max_prompts"] is not None else rows
    print(f"generate from {model_path}: {len(rows)} prompts x {a['num_samples']} samples", flush=True)
    completions = sample(model_path, [r["prompt"] for r in rows], a, seed)
    judges, _, _ = build_rewards(stage, job.upstream.get(UPSTREAM_SCORER), job.models)
    flat_rows = [r for r in rows for _ in range(a["num_samples"])]
    scores = judge_scores(judges, [r.weight for r in stage.rewards], [c for cs in completions for c in cs], flat_rows)
    k = a["num_samples"]
    samples, pairs = [], []
    annotators = [j for j in judges if callable(getattr(j, "annotate", None))]
    for i, (row, outs) in enumerate(zip(rows, completions, strict=True)):
        own = scores[i * k : (i + 1) * k]
        notes = {key: v for j in annotators for key, v in j.annotate(row).items()}
        samples.append({"id": row["id"], "prompt": row["prompt"], "answer": row.get("answer"), "completions": outs,
                        "scores": own} | notes)  # fmt: skip
        picked = best_and_worst(outs, own)
        if picked is not None:
            c, r = picked
            gold = row.get("solution") or row.get("answer") or ""
            pairs.append({"id": row["id"], "prompt": row["prompt"], "chosen": outs[c], "rejected": outs[r],
                          "chosen_score": own[c], "rejected_score": own[r], "baseline": sum(own) / k,
                          "gold": str(gold)} | notes)  # fmt: skip
    scored_apart = len(pairs)
    pairs = largest_gaps(pairs, a.get("large_gap_share"))  # args built without the kind's defaults lack it
    stage_dir.mkdir(parents=True, exist_ok=True)
    _write_jsonl(stage_dir / SAMPLES_FILE, samples)
    _write_jsonl(stage_dir / PAIRS_FILE, pairs)
    summary = {"kind": stage.kind, "init_model": model_path, "seconds": time.time() - start, "prompts": len(rows),
               "samples": len(scores), "pairs": len(pairs), "mean_score": sum(scores) / max(len(scores), 1),
               "generation": generation}  # fmt: skip
    kept = f" (the {len(pairs)} of {scored_apart} with the largest gaps)" if len(pairs) < scored_apart else ""
    print(f"{len(pairs)} pairs from {len(rows)} prompts{kept}; mean score {summary['mean_score']:.3f}", flush=True)
    write_atomic(stage_dir / STAGE_SUMMARY, json.dumps(summary, indent=1))
    return summary


def sample(model_path: str, prompts: list[str], a: dict, seed: int) -> list[list[str]]:
    """`num_samples` completions of each prompt, decoded without special tokens."""
    from harness.device import resolve_engine

    if resolve_engine(a["generation_engine"]) == "vllm":
        return _sample_vllm(model_path, prompts, a, seed)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(model_path, padding_side="left")
    tok.pad_token = tok.pad_token or tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_path).eval()
    out: list[list[str]] = []
    for b in range(0, len(prompts), a["batch_size"]):
        batch = tok(prompts[b : b + a["batch_size"]], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            ids = model.generate(**batch, do_sample=True, temperature=a["temperature"], top_k=0, top_p=1.0,
                                 max_new_tokens=a["max_new_tokens"], num_return_sequences=a["num_samples"],
                                 pad_token_id=tok.pad_token_id)  # fmt: skip
        texts = tok.batch_decode(ids[:, batch["input_ids"].size(1) :], skip_special_tokens=True)
        out += [texts[j : j + a["num_samples"]] for j in range(0, len(texts), a["num_samples"])]
        print(f"  sampled {min(b + a['batch_size'], len(prompts))}/{len(prompts)} prompts", flush=True)
    return out


def _sample_vllm(model_path: str, prompts: list[str], a: dict, seed: int) -> list[list[str]]:
    from vllm import LLM, SamplingParams

    params = SamplingParams(n=a["num_samples"], temperature=a["temperature"], max_tokens=a["max_new_tokens"], seed=seed)
    return [[o.text for o in r.outputs] for r in LLM(model=model_path, seed=seed).generate(prompts, params)]


def _write_jsonl(file: Path, rows: list[dict]) -> None:
    write_atomic(file, "".join(json.dumps(r) + "\n" for r in rows))


def read_pairs(folder: str | Path):
    """The pairs a generate stage wrote in `folder`, as a `datasets.Dataset` (TRL's trainers add the EOS)."""
    import datasets

    file = Path(folder) / PAIRS_FILE
    rows = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"{file}: no pairs (every prompt's samples scored alike); nothing to train on")
    return datasets.Dataset.from_list(rows)


def read_samples(folder: str | Path) -> list[dict]:
    """The samples a generate stage wrote in `folder` (each prompt with its gold answer, completions, scores)."""
    file = Path(folder) / SAMPLES_FILE
    rows = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
    if rows and "answer" not in rows[0]:
        raise ValueError(
            f"{file}: samples carry no `answer` (written before step labels existed); rerun the generate stage"
        )
    return rows
