"""Evaluation in a tool world: n sampled episodes per held-out question (harness.environments.episodes), scored
by the environment, written as lm-eval evaluations are (metrics.json, samples.jsonl, passk.png) so leaderboards,
bands and claims read them alike.

A sample is right when its episode succeeded (the environment's `success`); the sampling metrics (pass@k, maj@k
over the final answers) come from harness.evaluation.metrics as for lm-eval tasks, and the episode's behaviour is
added per task under `episodes/`: `success`, `turns`, `tool_calls`, `invalid_calls` (means per episode), `tool_use`
(the fraction of episodes that called a tool at least once) and `hit` where the environment reports it (a retrieval
found the answer). The protocol records the environment and the turn limit beside the sampling settings.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.config.components import EvalConfig
from harness.layout import EVAL_SAMPLES_FILE, METRICS_FILE, write_atomic

DEFAULT_MAX_TURNS = 4


def environment_factory(cfg: EvalConfig, data_dir: str | None, corpus: Path | None = None):
    """The suite's environment factory, with its corpus when the environment searches one: `corpus` (a fetched
    corpus's index), else the generated dataset's corpus.jsonl."""
    from harness.environments import ENVIRONMENTS

    factory = ENVIRONMENTS.get(cfg.environment.name)
    args = dict(cfg.environment.args)
    if factory.reads_corpus:
        corpus = corpus or Path(data_dir or "") / "corpus.jsonl"
        if not corpus.exists():
            raise FileNotFoundError(f"environment {cfg.environment.name!r} searches {corpus}, which is missing")
        args["corpus"] = str(corpus)
    return factory.build(**args)


@dataclass
class Questions:
    """An episode suite's own questions at paper scale (EvalConfig.dataset): the rows, and its corpus's index."""

    rows: list[dict]
    corpus: Path | None


def fetched_questions(datasets: dict, cfg: EvalConfig, root: Path | None) -> Questions:
    """The first `limit` rows of the suite's fetched dataset, read from the hub cache `root` (None: the hub), and
    the index of its corpus."""
    from itertools import islice

    from harness import offline
    from harness.stages.data import iter_rows

    dataset = datasets[cfg.dataset]
    folder = Path(offline.local_dataset(dataset, root)) if root is not None else None
    rows = list(islice(iter_rows(dataset, folder), cfg.limit))
    corpus = offline.corpus_index(dataset, root) if dataset.corpus and root is not None else None
    return Questions(rows, corpus)


def prompts_of(rows: list[dict], cfg: EvalConfig, tokenizer) -> list[str]:
    """Each question as training puts it: followed by the suite's instruction, in the chat template if asked."""
    prompts = [f"{r['prompt']}\n\n{cfg.instruction}" if cfg.instruction else r["prompt"] for r in rows]
    if cfg.apply_chat_template:
        prompts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                                 add_generation_prompt=True) for p in prompts]  # fmt: skip
    return prompts


def evaluate_episodes(model_path: str, cfg: EvalConfig, seed: int, out_dir: Path, data_dir: str | None,
                      questions: Questions | None = None) -> dict:  # fmt: skip
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.environments.episodes import run_episodes
    from harness.evaluation.evaluate import protocol
    from harness.evaluation.metrics import summarize
    from harness.world.splits import read_split

    start = time.time()
    seed = cfg.seed if cfg.seed is not None else seed
    out_dir.mkdir(parents=True, exist_ok=True)
    if questions is None:
        if data_dir is None:
            raise FileNotFoundError("an episode suite reads the dataset's test split: no data folder was given")
        questions = Questions(read_split(Path(data_dir), "test")[: cfg.limit], None)
    rows = questions.rows
    make_env = environment_factory(cfg, data_dir, questions.corpus)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    from harness import device

    placed = {"device_map": "auto"} if device.cuda() else {}  # paper scale: over the job's GPUs, in bfloat16
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, device.dtype_name()), **placed)
    model = model.eval()  # the toy worlds: on the CPU in float32
    torch.manual_seed(seed)
    max_turns = cfg.max_turns or DEFAULT_MAX_TURNS
    task = cfg.tasks[0]
    print(f"evaluating {model_path} on {task}: {len(rows)} questions x {cfg.n_samples} episodes in "
          f"{cfg.environment.name} (up to {max_turns} turns), seed {seed}", flush=True)  # fmt: skip
    flat = [r for r in rows for _ in range(cfg.n_samples)]
    prompts = prompts_of(flat, cfg, tokenizer)
    episodes = []
    for i in range(0, len(flat), cfg.batch_size):
        chunk = flat[i : i + cfg.batch_size]
        episodes += run_episodes(
            model, tokenizer, prompts[i : i + cfg.batch_size], chunk, make_env, max_turns=max_turns,
            max_turn_tokens=cfg.max_new_tokens, max_tokens=max_turns * cfg.max_new_tokens * 4,
            temperature=cfg.temperature or 1.0, top_p=cfg.top_p, greedy=cfg.temperature == 0,
        )  # fmt: skip
        print(f"  {min(i + cfg.batch_size, len(flat))}/{len(flat)} episodes", flush=True)
    n = cfg.n_samples
    golds = [str(r["answer"]) for r in rows]
    responses = [[tokenizer.decode(e.ids, skip_special_tokens=True) for e in episodes[j * n : (j + 1) * n]]
                 for j in range(len(rows))]  # fmt: skip
    answers = [[gold if e.stats.get("success") else final_answer(e) for e in episodes[j * n : (j + 1) * n]]
               for j, gold in enumerate(golds)]  # fmt: skip
    lengths = [[sum(e.mask) for e in episodes[j * n : (j + 1) * n]] for j in range(len(rows))]
    metrics = {task: summarize(answers, golds, responses, lengths) | behaviour(episodes)}
    result = {
        "model": model_path,
        "metrics": metrics,
        "protocol": protocol(cfg, "hf", seed, None, {})
        | {"environment": asdict(cfg.environment), "max_turns": max_turns},
        "seconds": time.time() - start,
    }
    with open(out_dir / EVAL_SAMPLES_FILE, "w") as f:
        for j, (gold, rs, a) in enumerate(zip(golds, responses, answers, strict=True)):
            stats = [episodes[j * n + k].stats for k in range(n)]
            f.write(json.dumps({"task": task, "doc_id": j, "target": gold, "responses": rs, "answers": a,
                                "episodes": stats}) + "\n")  # fmt: skip
    write_atomic(out_dir / METRICS_FILE, json.dumps(result, indent=1))
    from harness.evaluation.plots import plot_run_passk

    plot_run_passk(metrics, str(model_path), out_dir / "passk.png")
    return result


def final_answer(episode) -> str:
    """What a failed episode answered: its last policy turn, stripped (empty when it never answered)."""
    return episode.turns[-1].strip() if episode.turns else ""


def behaviour(episodes) -> dict[str, float]:
    """Per-episode means of the environments' counts, and the fraction of episodes that called a tool."""
    from harness.environments import EpisodeStats

    totals = EpisodeStats()
    for e in episodes:
        totals.add(e.stats)
    kept = ("success", "turns", "tool_calls", "invalid_calls", "hit")
    out = {f"episodes/{k}": v for k, v in totals.means().items() if k in kept}
    out["episodes/tool_use"] = sum(e.stats.get("tool_calls", 0) > 0 for e in episodes) / max(len(episodes), 1)
    return out
