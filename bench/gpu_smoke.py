"""One paper-scale code path on one GPU in under 10 minutes: bf16, TRL's colocated vLLM, a few GRPO steps through
the harness's grpo stage, then one evaluation on vLLM; tokens/s and peak GPU memory beside the memory plan.

    python bench/gpu_smoke.py                              # SmolLM2-135M-Instruct, converted from the packaged GGUF
    python bench/gpu_smoke.py --model Qwen/Qwen2.5-0.5B-Instruct --steps 8     # a hub model (hub reachable)

Needs a CUDA GPU and the vllm extra (see the README's GPU install line); without either it stops at once,
saying which (exit 2), before anything is built. The stage is `gold_grpo` of `ttrl-majority-vote` at the
small-real scale (generated word problems in the chat template, 16 completions per step), run through
`harness.stages.run_stage` as `harness train` runs it, with `generation_engine: vllm`, `vllm_mode: colocate`,
weights in bfloat16 (`parallel.dtype`) and completions of up to `--completion-tokens`. The evaluation is the
scale's `word-problems` suite (100 questions, greedy) of the trained model, `engine: vllm`.

Training and evaluation each run in a child process (vLLM keeps its share of the GPU for the life of the
process). Printed: the stage's seconds, tokens/s (TRL's `num_tokens`, prompt and completion tokens, over the
trainer's runtime), `torch.cuda.max_memory_allocated` (tensors the trainer allocated; vLLM's own pool, when it
uses one, is not in it) and the device memory in use at the end, beside `harness.memory.estimate` for the same
shape and batch. Results go to `--out`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the harness package is used from the checkout, not installed

PAPER, SCALE, VARIANT = "ttrl-majority-vote", "small-real", "gold_grpo"
PACKAGED = "smollm2-135m-instruct"
MODEL = ROOT / "results/world/models" / PACKAGED
DATA = ROOT / "results/world/data/word-problems"
NEVER = 10**9
GiB = 1024**3


def preflight() -> str | None:
    """Why this cannot run here (no CUDA GPU, no vllm package), or None."""
    import torch

    if not torch.cuda.is_available():
        return "needs a CUDA GPU: torch.cuda.is_available() is False on this machine (run it on a GPU node)"
    if find_spec("vllm") is None:
        return "needs the vllm package on the GPU node (see the README's GPU install line: pip install -e '.[vllm]')"
    return None


def smoke_stage(steps: int, completion_tokens: int, vllm_share: float):
    """The small-real gold_grpo stage, shortened, never saving, on colocated vLLM, weights in bfloat16."""
    from harness.config.load import load_paper
    from harness.config.parallel import ParallelConfig

    stage = load_paper(PAPER, SCALE).variants[VARIANT].stages[0]
    args = stage.args | {"max_steps": steps, "save_steps": NEVER, "logging_steps": 1, "warmup_steps": 0,
                         "max_completion_length": completion_tokens, "generation_engine": "vllm",
                         "vllm_mode": "colocate", "vllm_gpu_memory_utilization": vllm_share}  # fmt: skip
    return dataclasses.replace(stage, args=args, parallel=ParallelConfig(dtype="bfloat16"))


def child_train(model: str, out: Path, result: Path, steps: int, completion_tokens: int, vllm_share: float) -> None:
    import torch

    from harness.config.load import load_paper
    from harness.stages import StageJob, run_stage

    stage = smoke_stage(steps, completion_tokens, vllm_share)
    job = StageJob(stage=stage, model=model, dataset=load_paper(PAPER, SCALE).dataset, data_dir=DATA, seed=0,
                   dir=out, fingerprint="gpu-smoke")  # fmt: skip
    torch.cuda.reset_peak_memory_stats()
    start = time.time()
    summary = run_stage(job)
    seconds = time.time() - start
    free, total = torch.cuda.mem_get_info()
    history = summary.get("log_history", [])
    tokens = max((h["num_tokens"] for h in history if "num_tokens" in h), default=None)
    runtime = next((h["train_runtime"] for h in reversed(history) if "train_runtime" in h), seconds)
    result.write_text(json.dumps({
        "seconds": seconds, "train_runtime_s": runtime, "tokens": tokens,
        "tokens_per_s": tokens / runtime if tokens else None,
        "peak_allocated_gib": torch.cuda.max_memory_allocated() / GiB,
        "device_used_at_end_gib": (total - free) / GiB, "device_total_gib": total / GiB,
        "generation": summary.get("generation"), "global_step": summary.get("global_step"),
        "plan": memory_plan(job, total / GiB),
    }, indent=1))  # fmt: skip


def memory_plan(job, gpu_gib: float) -> str:
    """The memory plan's estimate for this stage on this GPU (harness.memory, as `harness validate` makes it),
    the model's shape read from its config and the prompt length from the stage's rows."""
    import dataclasses

    from transformers import AutoConfig, AutoTokenizer

    from harness import memory
    from harness.stages.plumbing import split_rows

    c = AutoConfig.from_pretrained(job.model)
    kv_heads = getattr(c, "num_key_value_heads", None) or c.num_attention_heads
    params = memory.llama_params(c.hidden_size, c.intermediate_size, c.num_hidden_layers, c.num_attention_heads,
                                 kv_heads, c.vocab_size, getattr(c, "tie_word_embeddings", True))  # fmt: skip
    shape = memory.Shape(params, c.num_hidden_layers, c.hidden_size, c.intermediate_size, c.num_attention_heads,
                         kv_heads, c.vocab_size, getattr(c, "head_dim", 0) or 0)  # fmt: skip
    tok = AutoTokenizer.from_pretrained(job.model)
    prompt_tokens = max(len(tok(r["prompt"], add_special_tokens=False).input_ids) for r in split_rows(job))
    dataset = dataclasses.replace(job.dataset, prompt_tokens=prompt_tokens)
    work = memory.workload(job.stage, dataset, processes=1, on_gpu=True)
    return memory.estimate(shape, work, job.stage.parallel, on_gpu=True, gpu_mem_gb=gpu_gib).line()


def child_eval(model: str, out: Path, result: Path) -> None:
    from harness.config.load import load_paper
    from harness.evaluation.evaluate import evaluate

    cfg = dataclasses.replace(load_paper(PAPER, SCALE).eval, engine="vllm")
    start = time.time()
    metrics = evaluate(model, cfg, 0, out, str(DATA))
    result.write_text(json.dumps({"seconds": time.time() - start, "metrics": metrics["metrics"],
                                  "engine": metrics["protocol"]["engine"]}, indent=1))  # fmt: skip


def run_child(what: str, args: argparse.Namespace, model: str, out: Path, logs: Path) -> dict:
    result, log = logs / f"{what}.json", logs / f"{what}.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", what, "--model", model, "--work", str(out),
           "--result", str(result), "--steps", str(args.steps), "--completion-tokens", str(args.completion_tokens),
           "--vllm-share", str(args.vllm_share)]  # fmt: skip
    with open(log, "w") as f:
        rc = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-40:])
        raise SystemExit(f"{what} failed (exit {rc}); end of {log}:\n{tail}")
    return json.loads(result.read_text())


def ensure_world(model: str | None) -> str:
    """The model to train (the packaged SmolLM2 unless a hub id or folder is given); the data built if missing."""
    needs = [(DATA / "train.jsonl", ["world", "data", "word-problems"])]
    needs += [] if model else [(MODEL / "config.json", ["world", "convert", PACKAGED])]
    for file, cmd in needs:
        if not file.exists():
            print(f"building {file.parent} (harness {' '.join(cmd)})", flush=True)
            subprocess.run([sys.executable, "-m", "harness", *cmd], cwd=ROOT, check=True)
    return model or str(MODEL)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="a hub id or a checkpoint folder (default: packaged SmolLM2-135M)")
    ap.add_argument("--steps", type=int, default=5, help="GRPO optimizer steps")
    ap.add_argument("--completion-tokens", type=int, default=256, help="max_completion_length")
    ap.add_argument("--vllm-share", type=float, default=0.3, help="vllm_gpu_memory_utilization (colocate)")
    ap.add_argument("--skip-eval", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "results/bench/gpu_smoke.json")
    ap.add_argument("--child", choices=("train", "eval"), help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    why = preflight()
    if why:
        print(f"error: bench/gpu_smoke.py {why}", file=sys.stderr)
        return 2
    if args.child == "train":
        child_train(args.model, args.work, args.result, args.steps, args.completion_tokens, args.vllm_share)
        return 0
    if args.child == "eval":
        child_eval(args.model, args.work, args.result)
        return 0
    import torch

    import harness  # noqa: F401  (sets HF_HOME and friends for the children)

    model = ensure_world(args.model)
    print(f"GPU: {torch.cuda.get_device_name(0)}; model {model}; {args.steps} GRPO steps on colocated vLLM", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gpu-smoke-") as tmp:
        work, logs = Path(tmp), args.out.parent / "gpu_smoke_logs"
        logs.mkdir(exist_ok=True)
        train = run_child("train", args, model, work / "stage", logs)
        print(f"train: {train['global_step']} steps in {train['seconds']:.0f} s, generation {train['generation']}")
        tps = f"{train['tokens_per_s']:.0f}" if train["tokens_per_s"] else "n/a (no num_tokens logged)"
        print(f"  tokens/s {tps} ({train['tokens']} tokens in {train['train_runtime_s']:.0f} s of training)")
        print(f"  peak GPU memory (torch.cuda.max_memory_allocated) {train['peak_allocated_gib']:.2f} GiB; "
              f"device in use at the end {train['device_used_at_end_gib']:.1f} of {train['device_total_gib']:.0f} GiB")  # fmt: skip
        print(f"  memory plan: {train['plan']}")
        report = {"model": model, "gpu": torch.cuda.get_device_name(0), "train": train}
        if not args.skip_eval:
            ev = run_child("eval", args, str(work / "stage" / "model"), work / "eval", logs)
            print(f"eval ({ev['engine']}): {ev['seconds']:.0f} s, {json.dumps(ev['metrics'])}")
            report["eval"] = ev
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
