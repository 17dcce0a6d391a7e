"""GRPO step time and peak memory of the harness against a plain TRL script, same model and settings.

    python bench/grpo_step.py              # 30 steps x 3 repeats per side, ~75 s on 2 idle cores
    python bench/grpo_step.py --quick      # smoke check: 8 steps, 1 repeat, ~20 s

Two sides train the same tiny model on the same labeled toy split with the same hyper-parameters:

- harness: the trainer `harness.stages.grpo.build_trainer` builds for the toy-scale `gold_grpo` stage of
  `ttrl-majority-vote` (toy defaults from configs/scales/toy.yaml, data from `stage_rows`), with
  `max_steps` set to `--steps` and `save_steps` out of reach so no checkpoint is written.
- plain: a hand-written `GRPOConfig` + `GRPOTrainer` with the same values, an exact-match reward
  written inline and the split read with `datasets`.

Each side runs in a fresh subprocess (so its peak RSS, `ru_maxrss`, is its own) with the same torch
thread count and seed. A step is the wall time between successive `on_step_end` callbacks, so it
covers data loading, generation, reward, loss, optimizer and logging; the first `--warmup` steps
are dropped. Sides alternate order across `--repeats` so drift in machine load favours neither;
the table shows medians and the ratio harness/plain (target <= 1.05). Numbers go to `--out`.

The model is results/world/models/toy-arith when the pipeline has built it (its pretrain.json is
written last); otherwise a small one (200 pre-training steps) is built once into results/bench/.
The harness side stops at `build_trainer`: the stage's `run` (harness.stages.plumbing.fit) adds checkpoint bookkeeping and the final
save, once per stage and outside the timed steps, and swaps TRL's log printer for a one-line one,
no dearer per logged step. Its trainer still saves once after the last step (save_strategy
"steps"), also outside the timed steps. The first run without a toy model builds one (~20 s).
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the harness package is used from the checkout, not installed

WORLD_MODEL = ROOT / "results/world/models/toy-arith"
WORLD_DATA = ROOT / "results/world/data/toy-arith"
BENCH_DIR = ROOT / "results/bench"
PAPER, SCALE, VARIANT = "ttrl-majority-vote", "toy", "gold_grpo"
TARGET = 1.05
NEVER = 10**9
"""save_steps beyond any benchmark length: checkpoint I/O is not what we time."""

# Settings read back from each built trainer, to prove both sides train the same way.
COMPARED_ARGS = (
    "learning_rate", "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps", "num_generations",
    "max_completion_length", "temperature", "beta", "warmup_steps", "logging_steps", "seed", "use_cpu", "bf16", "steps_per_generation", "generation_batch_size",
    "dataloader_num_workers", "disable_tqdm", "report_to",
)  # fmt: skip


@dataclasses.dataclass
class ChildSpec:
    """What one side's subprocess needs (passed as JSON on its command line)."""

    side: str
    model: str
    data: str
    steps: int
    threads: int
    seed: int
    hparams: dict
    result: str


# ----------------------------------------------------------------------------- both sides


def _step_timer():
    """A callback recording the wall time of every optimizer step (successive on_step_end)."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.last: float | None = None
            self.seconds: list[float] = []

        def on_step_begin(self, args, state, control, **kwargs):
            if self.last is None:  # the first step starts here; later ones where the previous ended
                self.last = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            now = time.perf_counter()
            self.seconds.append(now - self.last)
            self.last = now

    return StepTimer()


def _mean_logged(history: list[dict], key: str) -> float | None:
    values = [h[key] for h in history if key in h]
    return statistics.fmean(values) if values else None


def run_child(spec: ChildSpec) -> None:
    """Build one side's trainer, train, and write step times, peak RSS and resolved args."""
    import torch

    torch.set_num_threads(spec.threads)  # what `harness --threads N` does, before anything runs
    with tempfile.TemporaryDirectory(prefix=f"grpo-bench-{spec.side}-") as out_dir:
        build = build_harness_trainer if spec.side == "harness" else build_plain_trainer
        trainer = build(spec, Path(out_dir))
        timer = _step_timer()
        trainer.add_callback(timer)
        trainer.train()
    history = trainer.state.log_history
    result = {
        "side": spec.side,
        "step_s": timer.seconds,
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,  # KiB on Linux
        "torch_threads": torch.get_num_threads(),
        "args": {k: _jsonable(getattr(trainer.args, k, None)) for k in COMPARED_ARGS},
        "reward_mean": _mean_logged(history, "reward"),
        "completion_length_mean": _mean_logged(history, "completions/mean_length"),
    }
    Path(spec.result).write_text(json.dumps(result, indent=1))


def _jsonable(value):
    return value if isinstance(value, (int, float, str, bool, list, type(None))) else str(value)


# ----------------------------------------------------------------------------- harness side


def bench_stage(steps: int):
    """The toy-scale gold_grpo stage as a harness run resolves it, shortened and never saving."""
    from harness.config.load import load_paper

    stage = load_paper(PAPER, SCALE).variants[VARIANT].stages[0]
    return dataclasses.replace(stage, args={**stage.args, "max_steps": steps, "save_steps": NEVER})


def build_harness_trainer(spec: ChildSpec, out_dir: Path):
    from harness.config.load import load_paper
    from harness.stages import StageJob
    from harness.stages.data import stage_rows
    from harness.stages.grpo import build_trainer

    dataset = load_paper(PAPER, SCALE).dataset
    stage = bench_stage(spec.steps)
    train_ds = stage_rows(dataset, stage.data, stage.data_args, Path(spec.data))
    job = StageJob(stage=stage, model=spec.model, dataset=dataset, data_dir=Path(spec.data), seed=spec.seed,
                   dir=out_dir, fingerprint="bench")  # fmt: skip
    return build_trainer(job, train_ds, out_dir)


# ----------------------------------------------------------------------------- plain side


def build_plain_trainer(spec: ChildSpec, out_dir: Path):
    """A minimal TRL script: nothing from the harness, the hyper-parameters spelled out."""
    import torch
    from datasets import load_dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    def exact_match(completions: list[str], answer: list[str], **_) -> list[float]:
        return [float(c.strip() == a) for c, a in zip(completions, answer, strict=True)]

    hp, cuda = spec.hparams, torch.cuda.is_available()
    config = GRPOConfig(
        output_dir=str(out_dir),
        learning_rate=hp["learning_rate"],
        max_steps=hp["max_steps"],
        per_device_train_batch_size=hp["per_device_train_batch_size"],
        gradient_accumulation_steps=hp["gradient_accumulation_steps"],
        num_generations=hp["num_generations"],
        max_completion_length=hp["max_completion_length"],
        temperature=hp["temperature"],
        beta=0.0,  # the stage has no kl_to_reference term
        # TRL's spelling of the harness's default objective: group mean/std advantages, clipped
        # surrogate with epsilon 0.2, loss averaged over the tokens of the optimizer step.
        epsilon=0.2,
        loss_type="dapo",
        scale_rewards="group",
        warmup_steps=hp["warmup_steps"],
        logging_steps=hp["logging_steps"],
        seed=spec.seed,
        use_cpu=not cuda,
        bf16=cuda,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
    )
    train_ds = load_dataset("json", data_files=str(Path(spec.data) / "train.jsonl"), split="train")
    tokenizer = AutoTokenizer.from_pretrained(spec.model)
    return GRPOTrainer(model=spec.model, reward_funcs=exact_match, args=config, train_dataset=train_ds,
                       processing_class=tokenizer)  # fmt: skip


# ----------------------------------------------------------------------------- the toy world


def ensure_model_and_data(model: str | None, data: str | None, threads: int) -> tuple[str, str]:
    """The model and data directories to benchmark, building a small toy world when there is none."""
    if model is None:
        if (WORLD_MODEL / "pretrain.json").is_file():  # written last: the pipeline's model is complete
            model = str(WORLD_MODEL)
        else:
            model = str(build_bench_model(threads))
            data = data or str(BENCH_DIR / "data")  # the data the built model's tokenizer came from
    if data is None:
        data = str(WORLD_DATA if (WORLD_DATA / "train.jsonl").is_file() else build_bench_data())
    return model, data


def build_bench_data() -> Path:
    """Toy splits and their tokenizer under results/bench/, as `harness world data` makes them."""
    from harness.world.arithmetic import ArithmeticSpec, write_splits
    from harness.world.splits import read_split
    from harness.world.tokenizer import train_tokenizer

    data, tok = BENCH_DIR / "data", BENCH_DIR / "tokenizer"
    if not (tok / "tokenizer.json").is_file():
        write_splits(ArithmeticSpec(), data)
        train_tokenizer([r["prompt"] + r["answer"] for r in read_split(data, "pretrain")], tok)
    return data


def build_bench_model(threads: int) -> Path:
    """A small toy model (200 pre-training steps) under results/bench/model, built once."""
    out = BENCH_DIR / "model"
    if (out / "pretrain.json").is_file():
        return out
    import torch

    from harness.world.toy_model import ToyModelSpec, pretrain

    torch.set_num_threads(threads)  # as the pipeline's `harness --threads` does; more only contend on a busy box
    print(f"no toy model at {_rel(str(WORLD_MODEL))}: building one in {_rel(str(out))}", flush=True)
    data = build_bench_data()
    pretrain(ToyModelSpec(pretrain_steps=200), data, BENCH_DIR / "tokenizer", out)
    return out


# ----------------------------------------------------------------------------- the parent


def run_side(spec: ChildSpec, log: Path) -> dict:
    """Run one side in a fresh interpreter; its output goes to `log`, its numbers come back."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(dataclasses.asdict(spec))]
    with open(log, "w") as f:
        rc = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-30:])
        raise SystemExit(f"{spec.side} side failed (exit {rc}); end of {log}:\n{tail}")
    return json.loads(Path(spec.result).read_text())


def summarize_run(result: dict, warmup: int) -> dict:
    kept = result["step_s"][warmup:]
    return {
        "median_step_ms": 1000 * statistics.median(kept),
        "peak_rss_mib": result["peak_rss_kib"] / 1024,
        "steps_timed": len(kept),
        "step_ms": [round(1000 * s, 2) for s in result["step_s"]],
        "torch_threads": result["torch_threads"],
        "reward_mean": result["reward_mean"],
        "completion_length_mean": result["completion_length_mean"],
    }


def arg_mismatches(harness: dict, plain: dict) -> dict:
    """Trainer settings that differ between the sides (empty when the comparison is fair)."""
    return {k: (harness[k], plain[k]) for k in COMPARED_ARGS if harness[k] != plain[k]}


def benchmark(args: argparse.Namespace, model: str, data: str) -> dict:
    """Alternate the sides over the repeats and collect per-run summaries."""
    hparams = bench_stage(args.steps).args
    logs = BENCH_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict]] = {"harness": [], "plain": []}
    resolved: dict[str, dict] = {}
    load_before = os.getloadavg()
    for rep in range(args.repeats):
        order = ("harness", "plain") if rep % 2 == 0 else ("plain", "harness")
        for side in order:
            spec = ChildSpec(side, model, data, args.steps, args.threads, args.seed, hparams,
                             result=str(logs / f"{side}-{rep}.json"))  # fmt: skip
            result = run_side(spec, logs / f"{side}-{rep}.log")
            runs[side].append({"repeat": rep, "position": order.index(side), **summarize_run(result, args.warmup)})
            resolved[side] = result["args"]
            print(
                f"repeat {rep + 1}/{args.repeats} {side:7s} {runs[side][-1]['median_step_ms']:8.1f} ms/step", flush=True
            )
    return {"runs": runs, "resolved": resolved, "hparams": hparams, "load_before": load_before}


def report(args: argparse.Namespace, model: str, data: str, bench: dict) -> dict:
    runs = bench["runs"]
    sides = {
        side: {
            "median_step_ms": statistics.median(r["median_step_ms"] for r in rs),
            "peak_rss_mib": max(r["peak_rss_mib"] for r in rs),
            "runs": rs,
        }
        for side, rs in runs.items()
    }
    paired = [h["median_step_ms"] / p["median_step_ms"] for h, p in zip(runs["harness"], runs["plain"], strict=True)]
    return {
        "what": "GRPO optimizer-step wall time and peak RSS: harness.stages.grpo.build_trainer vs a plain TRL script",
        "settings": {
            "steps": args.steps,
            "warmup": args.warmup,
            "repeats": args.repeats,
            "threads": args.threads,
            "seed": args.seed,
            "model": _rel(model),
            "data": _rel(data),
        },  # fmt: skip
        "hparams": bench["hparams"],
        "arg_mismatches": arg_mismatches(bench["resolved"]["harness"], bench["resolved"]["plain"]),
        "sides": sides,
        "ratio": sides["harness"]["median_step_ms"] / sides["plain"]["median_step_ms"],
        "paired_ratios": paired,
        "target": TARGET,
        "load_average": {"before": bench["load_before"], "after": os.getloadavg()},
        "cpu_count": os.cpu_count(),
    }


def print_table(summary: dict) -> None:
    print(f"\n{'side':8s} {'step ms (median)':>17s} {'peak RSS MiB':>13s}")
    for side, s in summary["sides"].items():
        print(f"{side:8s} {s['median_step_ms']:17.1f} {s['peak_rss_mib']:13.0f}")
    print(f"ratio harness/plain: {summary['ratio']:.2f} (target <= {TARGET})")
    if summary["arg_mismatches"]:
        print(f"warning: the sides' trainer settings differ: {summary['arg_mismatches']}")
    before, after = summary["load_average"]["before"][0], summary["load_average"]["after"][0]
    print(f"load average (1 min) before/after: {before:.2f}/{after:.2f} on {summary['cpu_count']} cores")


def _rel(path: str) -> str:
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30, help="optimizer steps per run")
    ap.add_argument("--warmup", type=int, default=3, help="first steps of each run left out of the timing")
    ap.add_argument("--repeats", type=int, default=3, help="runs per side, in alternating order")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads in both sides")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default=None, help="model directory (default: the toy-arith world model)")
    ap.add_argument("--data", default=None, help="directory holding train.jsonl (default: the toy-arith world data)")
    ap.add_argument("--out", type=Path, default=BENCH_DIR / "grpo_step.json")
    ap.add_argument("--quick", action="store_true", help="smoke check: 8 steps, 1 repeat")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)  # internal: one side, as JSON
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.repeats = 8, 1
    if args.steps <= args.warmup:
        ap.error(f"--steps ({args.steps}) must exceed --warmup ({args.warmup})")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        run_child(ChildSpec(**json.loads(args.child)))
        return 0
    import harness  # noqa: F401  (sets HF_HOME and friends; both children inherit the same environment)

    model, data = ensure_model_and_data(args.model, args.data, args.threads)
    print(f"model {_rel(model)}, data {_rel(data)}, {args.steps} steps ({args.warmup} warm-up) x {args.repeats} "
          f"repeats, {args.threads} thread(s)", flush=True)  # fmt: skip
    summary = report(args, model, data, benchmark(args, model, data))
    print_table(summary)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1))
    print(f"wrote {_rel(str(args.out))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
