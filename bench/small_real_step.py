"""GRPO step time and peak memory at the small-real scale: SmolLM2-135M-Instruct, with and without a reference model.

    python bench/small_real_step.py            # 6 steps per setting (2 warm-up), ~8 min on 2 idle cores
    python bench/small_real_step.py --quick    # 3 steps per setting, 1 warm-up, ~4 min

The trainer is the one a small-real run builds (`harness.stages.grpo.build_trainer`) for the `gold_grpo` stage of
`ttrl-majority-vote`: configs/scales/small-real.yaml's GRPO settings (16 completions of up to 64 tokens
per step, prompts in the chat template), on the generated word problems. Two settings:

- `no_ref`: the stage as configured (no KL term, so TRL loads no reference model),
- `kl_ref`: the same stage plus `kl_to_reference` (coef 0.04), so TRL keeps a frozen reference copy
  of the 135M model and computes its log-probabilities every step.

Each setting runs in its own subprocess, so its peak RSS (`ru_maxrss`) is its own: model, reference,
optimizer state, generation and backward all included. A step is the wall time between successive
`on_step_end` callbacks; the first `--warmup` steps are dropped. Checkpoints are never written.
Needs the converted model and the data (`make small-real` builds both, or `harness world convert
smollm2-135m-instruct` and `harness world data word-problems`). Numbers go to `--out`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the harness package is used from the checkout, not installed
sys.path.insert(0, str(ROOT / "bench"))

from grpo_step import NEVER, _step_timer  # noqa: E402  (same step timer as the toy benchmark)

PAPER, SCALE, VARIANT = "ttrl-majority-vote", "small-real", "gold_grpo"
MODEL = ROOT / "results/world/models/smollm2-135m-instruct"
DATA = ROOT / "results/world/data/word-problems"
KL_COEF = 0.04
SETTINGS = ("no_ref", "kl_ref")


def bench_stage(steps: int, setting: str):
    """The small-real gold_grpo stage, shortened, never saving, with the KL term for `kl_ref`."""
    from harness.config.load import load_paper
    from harness.config.stage import PieceSpec

    stage = load_paper(PAPER, SCALE).variants[VARIANT].stages[0]
    objective = stage.objective
    if setting == "kl_ref":
        aux = [*objective.aux, PieceSpec(name="kl_to_reference", args={"coef": KL_COEF})]
        objective = dataclasses.replace(objective, aux=aux)
    return dataclasses.replace(stage, args={**stage.args, "max_steps": steps, "save_steps": NEVER}, objective=objective)


def run_child(setting: str, steps: int, threads: int, result: str) -> None:
    import torch
    from transformers import AutoTokenizer

    from harness.config.load import load_paper
    from harness.stages import StageJob
    from harness.stages.data import chat_prompts, stage_rows
    from harness.stages.grpo import build_trainer

    torch.set_num_threads(threads)
    stage = bench_stage(steps, setting)
    rows = stage_rows(load_paper(PAPER, SCALE).dataset, stage.data, stage.data_args, DATA)
    rows = chat_prompts(rows, AutoTokenizer.from_pretrained(str(MODEL)))
    with tempfile.TemporaryDirectory(prefix=f"small-real-bench-{setting}-") as out_dir:
        job = StageJob(stage=stage, model=str(MODEL), dataset=load_paper(PAPER, SCALE).dataset, data_dir=DATA, seed=0,
                       dir=Path(out_dir), fingerprint="bench")  # fmt: skip
        trainer = build_trainer(job, rows, Path(out_dir))
        timer = _step_timer()
        trainer.add_callback(timer)
        trainer.train()
    history = trainer.state.log_history
    lengths = [h["completions/mean_length"] for h in history if "completions/mean_length" in h]
    Path(result).write_text(json.dumps({
        "step_s": timer.seconds,
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "reference_model": trainer.ref_model is not None,
        "beta": trainer.beta,
        "completions_per_step": trainer.args.per_device_train_batch_size * trainer.args.gradient_accumulation_steps,
        "max_completion_length": trainer.args.max_completion_length,
        "completion_length_mean": statistics.fmean(lengths) if lengths else None,
        "torch_threads": torch.get_num_threads(),
    }, indent=1))  # fmt: skip


def run_setting(setting: str, args: argparse.Namespace) -> dict:
    logs = args.out.parent / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    result, log = logs / f"small-real-{setting}.json", logs / f"small-real-{setting}.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", setting, "--steps", str(args.steps),
           "--threads", str(args.threads), "--result", str(result)]  # fmt: skip
    with open(log, "w") as f:
        rc = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-30:])
        raise SystemExit(f"{setting} failed (exit {rc}); end of {log}:\n{tail}")
    raw = json.loads(result.read_text())
    kept = raw["step_s"][args.warmup :]
    return {
        "median_step_s": statistics.median(kept),
        "peak_rss_mib": raw["peak_rss_kib"] / 1024,
        "steps_timed": len(kept),
        "step_s": [round(s, 2) for s in raw["step_s"]],
    } | {k: raw[k] for k in ("reference_model", "beta", "completions_per_step", "max_completion_length",
                             "completion_length_mean", "torch_threads")}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=6, help="optimizer steps per setting")
    ap.add_argument("--warmup", type=int, default=2, help="first steps left out of the timing")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--out", type=Path, default=ROOT / "results/bench/small_real_step.json")
    ap.add_argument("--quick", action="store_true", help="3 steps per setting, 1 warm-up")
    ap.add_argument("--child", choices=SETTINGS, help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.warmup = 3, 1
    if args.steps <= args.warmup:
        ap.error(f"--steps ({args.steps}) must exceed --warmup ({args.warmup})")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        run_child(args.child, args.steps, args.threads, args.result)
        return 0
    import harness  # noqa: F401  (sets HF_HOME and friends for the children)

    for need, how in ((MODEL / "config.json", "harness world convert smollm2-135m-instruct"),
                      (DATA / "train.jsonl", "harness world data word-problems")):  # fmt: skip
        if not need.exists():
            raise SystemExit(f"{need.relative_to(ROOT)} is missing: run `{how}` (or make small-real) first")
    load = os.getloadavg()
    print(f"SmolLM2-135M-Instruct GRPO, {args.steps} steps per setting ({args.warmup} warm-up), "
          f"{args.threads} thread(s), load average {load[0]:.2f}", flush=True)  # fmt: skip
    results = {}
    for setting in SETTINGS:
        results[setting] = run_setting(setting, args)
        r = results[setting]
        print(f"{setting:7s} {r['median_step_s']:6.1f} s/step  peak RSS {r['peak_rss_mib']:7.0f} MiB  "
              f"reference model: {r['reference_model']}", flush=True)  # fmt: skip
    summary = {"paper": PAPER, "scale": SCALE, "variant": VARIANT, "steps": args.steps, "warmup": args.warmup,
               "threads": args.threads, "load_before": load, "kl_coef": KL_COEF, "settings": results}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1))
    print(f"wrote {args.out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
