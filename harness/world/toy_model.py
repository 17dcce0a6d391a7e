"""A tiny Llama built from a config and pre-trained from scratch to a chosen skill level.

Pre-training is plain next-token prediction on `prompt + solution + eos`, with the loss on the
solution tokens only (the solution is the answer, or a scratchpad ending in it: harness.world.arithmetic).
A base is defined by the skill it reaches, not by its step count (numerics differ between CPUs, and over
thousands of steps they compound): with `skill: [low, high]`, pre-training stops at the first check (every
`check_every` steps) whose greedy accuracy on held-out rows (the first VALIDATION_ROWS of the RL `train` split,
never pre-trained on) lies in the band, and the build fails when none does within `pretrain_steps`.
Training runs on `threads` threads with torch's deterministic algorithms, as reproducible as the CPU allows.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

from harness.layout import PRETRAIN_SUMMARY, write_atomic
from harness.world.splits import read_split


@dataclass
class ToyModelSpec:
    """Architecture and pre-training budget of a tiny Llama trained from scratch on the CPU."""

    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 384
    pretrain_steps: int = 1500
    """Optimizer steps of next-token pre-training on the dataset's pretrain split (with `skill`: at most these)."""
    learning_rate: float = 3e-3
    batch_size: int = 64
    seed: int = 0
    skill: list[float] | None = None
    """[low, high]: the held-out greedy accuracy the base is built to (see the module docstring); None: train for
    pretrain_steps whatever it reaches."""
    check_every: int = 100
    """With `skill`: steps between two checks of it."""
    settle: int = 2
    """With `skill`: consecutive checks in the band that stop pre-training."""
    threads: int = 2
    """CPU threads pre-training runs on (fixed: the order of floating-point sums depends on it)."""
    max_positions: int | None = None
    """The longest prompt plus answer the model is meant for (config.json's max_position_embeddings: lm-eval cuts a
    prompt to it minus the tokens it generates); None: 64, enough for the arithmetic worlds."""
    init_from: str | None = None
    """A toy model (configs/models/) whose weights and tokenizer this one starts from, fine-tuned on its own dataset
    (the architecture fields above are then that model's); None: from scratch with the dataset's tokenizer."""


VALIDATION_ROWS = 500
"""Held-out rows the skill is checked on during pre-training (the test split is kept for the final measure): at an
accuracy of 0.1, 500 rows measure it to +/- 0.013 (one standard error), 200 rows only to +/- 0.021."""


class SkillError(RuntimeError):
    """A base that cannot be built to its stated skill."""


def build_model(spec: ToyModelSpec, tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        max_position_embeddings=spec.max_positions or 64,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    return LlamaForCausalLM(cfg)


def _batch(rows: list[dict], tokenizer):
    """Right-padded (B, T) input ids and labels with -100 everywhere but the solution and eos."""
    import torch

    seqs, labels = [], []
    for r in rows:
        p = tokenizer(r["prompt"], add_special_tokens=False)["input_ids"]
        a = tokenizer(_solution(r), add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        seqs.append(p + a)
        labels.append([-100] * len(p) + a)
    width = max(map(len, seqs))
    pad = tokenizer.pad_token_id
    ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
    lab = torch.tensor([s + [-100] * (width - len(s)) for s in labels])
    return ids, lab, (ids != pad).long()


def _correct(texts: list[str], rows: list[dict]) -> list[bool]:
    """The final answer's exact match; for program rows (`tests`) the same function as the reference, read off
    the syntax tree and never run; for verdict rows (`candidate`) the last word; for SQL rows (`database`) the same result set, both queries run in the sandbox."""
    from harness.grader import is_correct
    from harness.grader.executed import extract_query, same_rows, sql_job, sql_outcome
    from harness.sandbox import run_many
    from harness.world.programs import same_function

    if rows and "database" in rows[0]:
        jobs = [
            sql_job(extract_query(t) or "", r["answer"], {"db.sql": r["database"].encode()})
            for t, r in zip(texts, rows, strict=True)
        ]
        outs = run_many([j for j, _ in jobs])
        got = [sql_outcome(o, nonce) for o, (_, nonce) in zip(outs, jobs, strict=True)]
        return [g is not None and same_rows(g["preds"][0][0], g["gold"][0], ordered=False) for g in got]
    if rows and "candidate" in rows[0]:  # a verdict (harness.world.verdicts): its last word
        return [(t.split() or [""])[-1] == r["answer"] for t, r in zip(texts, rows, strict=True)]
    if rows and "tests" in rows[0]:
        return [same_function(t.split("\n")[0], r["answer"]) for t, r in zip(texts, rows, strict=True)]
    return [is_correct(t, r["answer"]) for t, r in zip(texts, rows, strict=True)]


def _solution(row: dict) -> str:
    # Data built before solutions existed has answers only, which is what its solutions would be.
    return row.get("solution", row["answer"])


def pretrain(spec: ToyModelSpec, data_dir: Path, tokenizer_dir: Path, out_dir: Path, log_every: int = 100,
             environment=None, init_dir: Path | None = None) -> dict:  # fmt: skip
    """Train from scratch (to `spec.skill` when set) and save a Hugging Face checkpoint (model + tokenizer) in
    `out_dir`, with pretrain.json: steps taken, skill checks, held-out accuracy. SkillError: no step in the band.
    `environment` (a factory of harness.environments environments): the world is a tool world, and skill is the
    success rate of greedy episodes in it (tool calls answered by the environment, not by the model). `init_dir`: a
    saved model (and its tokenizer, which replaces `tokenizer_dir`) to fine-tune instead of starting from scratch."""
    import torch
    from transformers import AutoTokenizer

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(spec.threads)
    torch.use_deterministic_algorithms(True)
    try:
        return _pretrain(spec, data_dir, init_dir or tokenizer_dir, out_dir, log_every, AutoTokenizer, environment,
                         init_dir)  # fmt: skip
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def _pretrain(spec: ToyModelSpec, data_dir: Path, tokenizer_dir: Path, out_dir: Path, log_every: int,
              auto_tokenizer, environment=None, init_dir: Path | None = None) -> dict:  # fmt: skip
    import torch

    torch.manual_seed(spec.seed)
    rng = random.Random(spec.seed)
    tokenizer = auto_tokenizer.from_pretrained(tokenizer_dir)
    if init_dir is not None:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(init_dir)
    else:
        model = build_model(spec, tokenizer)
    rows = read_split(data_dir, "pretrain")
    held_out = read_split(data_dir, "train")[:VALIDATION_ROWS] if spec.skill else []
    opt = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, weight_decay=0.01)
    warmup = max(1, spec.pretrain_steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * max(0.05, 1 - s / max(1, spec.pretrain_steps))
    )
    model.train()
    start, history, checks, step = time.time(), [], [], 0
    for step in range(1, spec.pretrain_steps + 1):
        ids, labels, mask = _batch(rng.sample(rows, spec.batch_size), tokenizer)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if step % log_every == 0 or step == spec.pretrain_steps:
            history.append({"step": step, "loss": loss.item()})
            print(
                f"pretrain step {step}/{spec.pretrain_steps} loss {loss.item():.4f} ({time.time() - start:.0f}s)",
                flush=True,
            )
        if spec.skill and (step % spec.check_every == 0 or step == spec.pretrain_steps):
            model.eval()
            checks.append({"step": step, "accuracy": greedy_accuracy(model, tokenizer, held_out, environment)})
            model.train()
            low, high = spec.skill
            print(f"skill check at step {step}: held-out greedy accuracy {checks[-1]['accuracy']:.3f} "
                  f"(band {low:g}-{high:g})", flush=True)  # fmt: skip
            if checks[-1]["accuracy"] > high:
                raise SkillError(f"the base jumped past its skill band {low:g}-{high:g} between two checks "
                                 f"({_trace(checks)}): check more often (check_every) or lower its learning rate")  # fmt: skip
            if _settled(checks, spec):
                break
    if spec.skill and not _settled(checks, spec):
        raise SkillError(f"the base did not settle in its skill band {spec.skill[0]:g}-{spec.skill[1]:g} "
                         f"({spec.settle} checks in a row) in {spec.pretrain_steps} steps ({_trace(checks)}): "
                         "raise pretrain_steps")  # fmt: skip
    model.eval()
    test = read_split(data_dir, "test")
    acc = greedy_accuracy(model, tokenizer, test, environment)
    if spec.skill and not _within(acc, spec.skill, len(test)):
        raise SkillError(f"the base's greedy accuracy on the test split, {acc:.3f}, lies outside its skill band "
                         f"{spec.skill[0]:g}-{spec.skill[1]:g} by more than its sampling margin on {len(test)} rows "
                         f"({_trace(checks)} on validation rows): raise settle or narrow the band")  # fmt: skip
    print(f"pretrain done after {step} steps: greedy held-out accuracy {acc:.3f}", flush=True)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    summary = {
        "steps": step,
        "seconds": time.time() - start,
        "greedy_test_accuracy": acc,
        "skill": spec.skill,
        "settle": spec.settle,
        "skill_checks": checks,
        "threads": spec.threads,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # the instruction set its kernels ran (harness/__init__)
        "history": history,
    }
    write_atomic(Path(out_dir) / PRETRAIN_SUMMARY, json.dumps(summary, indent=1))
    return summary


def _settled(checks: list[dict], spec: ToyModelSpec) -> bool:
    """The last `spec.settle` checks all lie in the band (none above it: pre-training stops at the first that is)."""
    return len(checks) >= spec.settle and all(c["accuracy"] >= spec.skill[0] for c in checks[-spec.settle :])


def _within(accuracy: float, band: list[float], n: int) -> bool:
    """Whether an accuracy measured on `n` rows is consistent with `band`: inside it, or outside by less than two
    standard errors of a rate at the band's nearer edge.

    >>> _within(0.045, [0.07, 0.15], 200), _within(0.02, [0.07, 0.15], 200), _within(0.95, [0.8, 0.9], 200)
    (True, False, False)
    """
    edge = min(max(accuracy, band[0]), band[1])
    return abs(accuracy - edge) <= 2 * (edge * (1 - edge) / n) ** 0.5


def _trace(checks: list[dict]) -> str:
    return ", ".join(f"{c['accuracy']:.2f} at {c['step']}" for c in checks[-4:])


def greedy_accuracy(model, tokenizer, rows: list[dict], environment=None, batch_size: int = 100) -> float:
    """Accuracy of greedy answers (a quick check of the skill level, not the eval): see `_correct`; in a tool world
    (`environment`), the success rate of greedy episodes of up to 4 turns."""
    import torch

    # Room for the longest solution and eos; never under 8, the budget answer-only worlds were measured with.
    width = max(len(tokenizer(_solution(r), add_special_tokens=False)["input_ids"]) for r in rows) + 1
    max_new_tokens, correct = max(8, width), 0
    for i in range(0, len(rows), batch_size):
        chunk = rows[i : i + batch_size]
        if environment is not None:
            from harness.environments.episodes import run_episodes

            episodes = run_episodes(model, tokenizer, [r["prompt"] for r in chunk], chunk, environment, max_turns=4,
                                    max_turn_tokens=max_new_tokens, max_tokens=4 * max_new_tokens, greedy=True)  # fmt: skip
            correct += sum(e.stats.get("success", 0.0) for e in episodes)
            continue
        enc = tokenizer([r["prompt"] for r in chunk], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)  # fmt: skip
        texts = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        correct += sum(_correct(texts, chunk))
    return correct / len(rows)
