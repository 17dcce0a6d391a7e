"""Evaluation with lm-eval: n samples per question generated once, graded by harness.grader.

lm-eval runs the tasks (the project's own from harness/evaluation/tasks/, stock ones at paper scale) with
`repeats = n_samples`; the sampling metrics (pass@k for every k <= n, maj@k, diversity) are then
computed from the logged raw responses with the suite's answer extractors, so they mean the same
thing for every task. Generation runs on vLLM on a GPU node and on transformers elsewhere
(`engine` in the suite). Every result records its protocol (what makes two results comparable,
harness/evaluation/protocol.py); the file's fields are described in harness/evaluation/results.py.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from harness import device, grader
from harness.config.components import TASK_QUESTIONS, EvalConfig
from harness.evaluation.metrics import summarize
from harness.layout import EVAL_SAMPLES_FILE, METRICS_FILE, write_atomic

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


def extractor_for(cfg: EvalConfig, task: str) -> tuple[str, grader.Extractor]:
    """The answer extractor (name, extractor) of one task of the suite (a group's subtasks use the group's)."""
    name = cfg.extractors.get(task, cfg.answer_extractor)
    return name, grader.EXTRACTORS.get(name)


def protocol(cfg: EvalConfig, engine: str, seed: int, chat_template: str | None, task_versions: dict) -> dict[str, Any]:
    """Everything that makes two evaluations comparable, recorded with every result."""
    return (
        {
            "tasks": list(cfg.tasks),
            "task_versions": {t: str(v) for t, v in sorted(task_versions.items())},
            "n_samples": cfg.n_samples,
            "temperature": cfg.temperature,
            "top_p": cfg.top_p,
            "max_new_tokens": cfg.max_new_tokens,
            "limit": cfg.limit,
            "num_fewshot": cfg.num_fewshot,
            "seed": seed,
            "apply_chat_template": cfg.apply_chat_template,
            "chat_template_sha": _sha(chat_template) if cfg.apply_chat_template else None,
            "extractors": {t: "{}@{}".format(*_named(cfg, t)) for t in cfg.tasks},
            "grader_version": grader.VERSION,
            "engine": engine,
            "engine_version": _version("vllm" if engine == "vllm" else "transformers"),
            "tensor_parallel_size": cfg.tensor_parallel_size if engine == "vllm" else 1,
            "dtype": device.dtype_name(),
            "lm_eval_version": _version("lm-eval"),
            "transformers_version": _version("transformers"),
            "torch_version": _version("torch"),
        }
        | ({"judges": [asdict(j) for j in cfg.judges]} if cfg.judges else {})
        | ({"instruction": cfg.instruction} if cfg.instruction else {})
        | ({"ask": cfg.ask} if cfg.ask not in (None, "template") else {})
    )


def evaluate(model_path: str, cfg: EvalConfig, seed: int, out_dir: Path, data_dir: str | None = None,
             hub_root: Path | None = None, models: dict[str, str] | None = None) -> dict:  # fmt: skip
    """Run every task of the suite on `model_path`; write metrics.json, samples.jsonl and passk.png to `out_dir`.
    With `hub_root`, tasks read their hub datasets from that hub cache only (harness.hub). `models`: where each model
    config the suite's judges read lies (a generative judge). (A suite with an environment runs episodes instead:
    harness/evaluation/episodes.py.)"""
    from lm_eval import simple_evaluate

    start = time.time()
    seed = cfg.seed if cfg.seed is not None else seed
    out_dir.mkdir(parents=True, exist_ok=True)
    engine = device.resolve_engine(cfg.engine)
    lm = _model(model_path, cfg, engine, seed)
    answers = _answer_cache(lm, model_path, cfg, engine, seed, out_dir)  # a requeued attempt resumes from it
    tm = task_manager(list(cfg.tasks), data_dir)
    if hub_root is not None:
        from harness.hub import use_local_task_data

        use_local_task_data(tm, cfg, hub_root)
    sampling = cfg.n_samples > 1 or cfg.temperature > 0
    gen_kwargs = {"do_sample": sampling, "max_gen_toks": cfg.max_new_tokens}
    if sampling:
        gen_kwargs |= {"temperature": cfg.temperature, "top_p": cfg.top_p}
    loaded = tm.load(list(cfg.tasks))["tasks"]
    tasks = list(loaded.values())
    for task in tasks:  # n samples per question, generated once
        task.set_config(key="repeats", value=cfg.n_samples)
        if cfg.ask == "question":
            ask_the_question(task, TASK_QUESTIONS[task.config.task])
        if cfg.instruction:
            ask_with_instruction(task, cfg.instruction)
    print(f"evaluating {model_path} on {', '.join(cfg.tasks)}: {cfg.n_samples} samples/question, "
          f"engine {engine}, seed {seed}", flush=True)  # fmt: skip
    out = simple_evaluate(
        model=lm,
        tasks=tasks,
        task_manager=tm,
        gen_kwargs=gen_kwargs,
        limit=cfg.limit,
        num_fewshot=cfg.num_fewshot,
        log_samples=True,
        apply_chat_template=cfg.apply_chat_template,
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        fewshot_random_seed=seed,
    )
    tokenizer = getattr(lm, "tokenizer", None)
    metrics, samples_out = _score(cfg, out, _token_counter(tokenizer), models)
    template = getattr(tokenizer, "chat_template", None)
    result = {
        "model": model_path,
        "metrics": metrics,
        "protocol": protocol(cfg, engine, seed, template, out.get("versions") or {}),
        "seconds": time.time() - start,
    }
    with open(out_dir / EVAL_SAMPLES_FILE, "w") as f:
        f.writelines(json.dumps(s) + "\n" for s in samples_out)
    raw = {k: out.get(k) for k in ("results", "groups", "group_subtasks", "configs", "versions", "n-samples", "config")}
    write_atomic(out_dir / "lm_eval_results.json", json.dumps(raw, indent=1, default=str))
    write_atomic(out_dir / METRICS_FILE, json.dumps(result, indent=1))
    answers.remove()  # complete: every answer is in EVAL_SAMPLES_FILE
    from harness.evaluation.plots import plot_run_passk

    plot_run_passk(metrics, str(model_path), out_dir / "passk.png")
    return result


def ask_the_question(task, column: str) -> None:
    """A generation task asks its dataset's question alone (the `column` of each document), not framed by the
    task's own template, as a training stage puts a dataset's prompt."""
    if getattr(task, "OUTPUT_TYPE", None) == "generate_until":
        task.doc_to_text = lambda doc, *args, **kwargs: str(doc[column]).strip()


def ask_with_instruction(task, instruction: str) -> None:
    """Every question of a generation task followed by a blank line and `instruction`, as training prompts are
    (harness.stages.data.with_instruction); other tasks (log-likelihood, choices) are left as they are."""
    if getattr(task, "OUTPUT_TYPE", None) != "generate_until":
        return
    question = task.doc_to_text

    def asked(doc, *args, **kwargs):
        return f"{question(doc, *args, **kwargs)}\n\n{instruction}"

    task.doc_to_text = asked


def _token_counter(tokenizer):
    """Tokens in each of a list of texts, re-encoded by the evaluated model's tokenizer (None without one): a
    response's length as that model counts text, close to (not always equal to) the tokens it generated."""
    if tokenizer is None:
        return None
    return lambda texts: [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def _score(
    cfg: EvalConfig, out: dict, count_tokens=None, models: dict[str, str] | None = None
) -> tuple[dict, list[dict]]:
    """Sampling metrics per task (and per group, pooling its subtasks' questions) from the raw responses;
    `count_tokens` (texts -> token counts) adds response lengths."""
    metrics, samples_out, graded = {}, [], {}
    group_of = {sub: group for group, subs in (out.get("group_subtasks") or {}).items() for sub in subs}
    for task, samples in out["samples"].items():
        lm_metrics = {k: v for k, v in out["results"][task].items() if isinstance(v, (int, float))}
        if not samples or not all(isinstance(r, str) for r in samples[0]["resps"][0]):
            metrics[task] = {"lm_eval": lm_metrics}  # a log-likelihood task: no samples to grade
            continue
        _, extract = extractor_for(cfg, group_of.get(task, task))
        responses = [list(s["resps"][0]) for s in samples]
        golds = [extract.gold(str(s["target"])) for s in samples]
        # an answer equivalent to the gold one (math_verify) is recorded as the gold string: metrics compare strings
        answers = [[extract.canonical(extract(r), g) for r in rs] for rs, g in zip(responses, golds, strict=True)]
        lengths = [count_tokens(rs) for rs in responses] if count_tokens else None
        graded[task] = (answers, golds, responses, lengths)
        metrics[task] = summarize(answers, golds, responses, lengths) | {"lm_eval": lm_metrics}
        if cfg.judges:
            prompts = [str(s.get("doc", {}).get("prompt", "")) for s in samples]
            metrics[task] |= judge_metrics(
                cfg.judges, responses, golds, prompts, [s["doc_id"] for s in samples], models
            )
        samples_out += [
            {"task": task, "doc_id": s["doc_id"], "target": g, "responses": rs, "answers": a}
            for s, g, a, rs in zip(samples, golds, answers, responses, strict=True)
        ]
    for group, subtasks in (out.get("group_subtasks") or {}).items():
        parts = [graded[t] for t in subtasks if t in graded]
        if parts and group not in metrics:
            pooled = [sum((p[i] for p in parts), []) for i in range(3)]
            lengths = sum((p[3] for p in parts), []) if all(p[3] is not None for p in parts) else None
            metrics[group] = summarize(*pooled, lengths) | {"subtasks": list(subtasks)}
    return metrics, samples_out


def judge_metrics(judges: list, responses: list[list[str]], golds: list, prompts: list[str], ids: list,
                  models: dict[str, str] | None = None) -> dict:  # fmt: skip
    """`judge/<name>`: a judge's mean score over every response of every question (its rewards' weighted sum,
    each reward seeing the question's gold `answer`, `prompts` and `id`; one that reads a model, a generative judge,
    is given where that model lies from `models`); `judge/min`: the lowest of them. Unscorable responses count 0.

    >>> from harness.config.components import JudgeSpec, RewardSpec
    >>> short = JudgeSpec("short", [RewardSpec("length", args={"max_chars": 2})])
    >>> right = JudgeSpec("right", [RewardSpec("exact_match")])
    >>> judge_metrics([short, right], [["4", "40"]], ["4"], ["2+2="], [0])
    {'judge/short': 0.25, 'judge/right': 0.5, 'judge/min': 0.25}
    """
    from harness.rewards import REWARDS, weighted_sum

    flat = [r for rs in responses for r in rs]
    columns = {key: [v for v, rs in zip(values, responses, strict=True) for _ in rs]
               for key, values in (("answer", golds), ("prompts", prompts), ("id", ids))}  # fmt: skip
    out = {}
    for judge in judges:
        terms = [(spec.weight, REWARDS.get(spec.name).build(**spec.args | _location(spec, models)))
                 for spec in judge.rewards]  # fmt: skip
        total = weighted_sum(terms, flat, **columns)
        out[f"judge/{judge.name}"] = sum(total) / max(len(total), 1)
    if len(judges) > 1:
        out["judge/min"] = min(out.values())
    return out


def _location(spec, models: dict[str, str] | None) -> dict:
    """{"location": folder} for a reward that reads a model config (judge.py); nothing for others."""
    from harness.rewards import REWARDS

    if not REWARDS.get(spec.name).reads_model:
        return {}
    if spec.args["model"] not in (models or {}):
        raise ValueError(f"eval judge reward {spec.name!r} reads model {spec.args['model']!r}, which was not given")
    return {"location": models[spec.args["model"]]}


def _model(model_path: str, cfg: EvalConfig, engine: str, seed: int):
    if engine == "vllm":
        from lm_eval.models.vllm_causallms import VLLM

        return VLLM(pretrained=model_path, dtype="auto", tensor_parallel_size=cfg.tensor_parallel_size,
                    max_gen_toks=cfg.max_new_tokens, batch_size="auto", seed=seed)  # fmt: skip
    from lm_eval.models.huggingface import HFLM

    cuda = device.cuda()
    return HFLM(pretrained=model_path, dtype="bfloat16" if cuda else "float32", batch_size=cfg.batch_size,
                device="cuda" if cuda else "cpu")  # fmt: skip


VLLM_CHUNK = 1024
"""Requests vLLM answers per committed chunk (transformers: `batch_size`): what a preempted evaluation can lose,
large enough to keep vLLM's continuous batching busy."""


def _answer_cache(lm, model_path: str, cfg: EvalConfig, engine: str, seed: int, out_dir: Path):
    """Route `lm` through the answers earlier attempts of this evaluation committed (harness/evaluation/resume.py),
    in a cache keyed by the model's files and the protocol: the evaluation's folder outlives a changed config."""
    from harness.evaluation.resume import AnswerCache, answer_resumably, cache_file

    template = getattr(getattr(lm, "tokenizer", None), "chat_template", None)
    root = Path(model_path)
    files = [(str(f.relative_to(root)), f.stat().st_size, f.stat().st_mtime_ns)
             for f in sorted(root.rglob("*")) if f.is_file()] if root.is_dir() else []  # fmt: skip
    key = {"model": model_path, "files": files, "protocol": protocol(cfg, engine, seed, template, {}),
           "batch_size": cfg.batch_size}  # fmt: skip
    cache = AnswerCache(cache_file(out_dir, lm.rank), _sha(json.dumps(key, sort_keys=True, default=str)))
    answer_resumably(lm, cache, seed, cfg.batch_size if engine == "hf" else VLLM_CHUNK)
    return cache


def _named(cfg: EvalConfig, task: str) -> tuple[str, str]:
    name, extractor = extractor_for(cfg, task)
    return name, extractor.version


def _sha(text: str | None) -> str | None:
    return hashlib.sha256(text.encode()).hexdigest()[:16] if text else None


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "absent"
