"""Evaluation with lm-eval: n samples per question generated once, graded by harness.grader.

lm-eval runs the tasks (the project's own from harness/tasks/, stock ones at paper scale) with
`repeats = n_samples`; the sampling metrics (pass@k for every k <= n, maj@k, diversity) are then
computed from the logged raw responses, so they mean the same thing for every task.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness import grader
from harness.config import EvalConfig
from harness.metrics import summarize

TASKS_DIR = Path(__file__).resolve().parent / "tasks"


def own_tasks() -> set[str]:
    """Names of the lm-eval tasks this project ships."""
    names = set()
    for f in TASKS_DIR.glob("*.yaml"):
        for line in f.read_text().splitlines():
            if line.startswith("task:"):
                names.add(line.split(":", 1)[1].strip())
    return names


def task_manager(tasks: list[str], data_dir: str | None):
    from lm_eval.tasks import TaskManager

    stock = bool(set(tasks) - own_tasks())  # the stock index takes seconds to build: only when needed
    return TaskManager(include_path=str(TASKS_DIR), include_defaults=stock, metadata={"data_dir": data_dir})


def fingerprint(cfg: EvalConfig, backend: str, seed: int) -> dict[str, Any]:
    """Everything that makes two evaluations comparable, recorded with every result."""
    import lm_eval
    import transformers

    return {
        "tasks": list(cfg.tasks),
        "n_samples": cfg.n_samples,
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "max_new_tokens": cfg.max_new_tokens,
        "apply_chat_template": cfg.apply_chat_template,
        "limit": cfg.limit,
        "seed": seed,
        "grader_version": grader.VERSION,
        "backend": backend,
        "lm_eval_version": lm_eval.__version__,
        "transformers_version": transformers.__version__,
    }


def evaluate(model_path: str, cfg: EvalConfig, seed: int, out_dir: Path, data_dir: str | None = None) -> dict:
    """Run every task of the suite on `model_path`; write metrics.json and samples.jsonl to `out_dir`."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    start = time.time()
    out_dir.mkdir(parents=True, exist_ok=True)
    lm = HFLM(pretrained=model_path, dtype="float32", batch_size=cfg.batch_size, device="cpu")
    tm = task_manager(list(cfg.tasks), data_dir)
    sampling = cfg.n_samples > 1 or cfg.temperature > 0
    gen_kwargs = {"do_sample": sampling, "max_gen_toks": cfg.max_new_tokens}
    if sampling:
        gen_kwargs |= {"temperature": cfg.temperature, "top_p": cfg.top_p}
    tasks = list(tm.load(list(cfg.tasks))["tasks"].values())
    for task in tasks:  # n samples per question, generated once
        task.set_config(key="repeats", value=cfg.n_samples)
    out = simple_evaluate(
        model=lm,
        tasks=tasks,
        task_manager=tm,
        gen_kwargs=gen_kwargs,
        limit=cfg.limit,
        log_samples=True,
        apply_chat_template=cfg.apply_chat_template,
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        fewshot_random_seed=seed,
    )
    metrics, samples_out = {}, []
    for task, samples in out["samples"].items():
        answers = [[grader.extract_answer(r) for r in s["resps"][0]] for s in samples]
        golds = [grader.normalize(str(s["target"])) for s in samples]
        metrics[task] = summarize(answers, golds)
        metrics[task]["lm_eval"] = {k: v for k, v in out["results"][task].items() if isinstance(v, (int, float))}
        samples_out += [
            {"task": task, "doc_id": s["doc_id"], "target": g, "responses": s["resps"][0], "answers": a}
            for s, g, a in zip(samples, golds, answers, strict=True)
        ]
    result = {
        "model": model_path,
        "metrics": metrics,
        "fingerprint": fingerprint(cfg, "hf", seed),
        "protocol": asdict(cfg),
        "seconds": time.time() - start,
    }
    with open(out_dir / "samples.jsonl", "w") as f:
        f.writelines(json.dumps(s) + "\n" for s in samples_out)
    raw = {k: out.get(k) for k in ("results", "configs", "versions", "n-samples", "config")}
    (out_dir / "lm_eval_results.json").write_text(json.dumps(raw, indent=1, default=str))
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=1))
    return result
