"""The memory plan (harness/memory.py) against measured peak memory of real GRPO steps on the CPU.

    python bench/memory.py            # toy model and SmolLM2-135M, 3 GRPO steps each (~3 min on 2 idle cores)
    python bench/memory.py --quick    # toy model only (~30 s)

Each case builds the trainer a real run builds (`harness.stages.grpo.build_trainer`, the `gold_grpo` stage of
`ttrl-majority-vote` at its scale's settings) in its own subprocess and trains a few steps under a tracker of
live tensor memory: every tensor storage created by an aten op is counted until it is freed (a
TorchDispatchMode with weak references to the storages), the model's weights counted from the start. Its peak
is what `torch.cuda.max_memory_allocated` reports on a GPU: tensor memory, without the allocator's slack.
The process's peak RSS grows by more (Python objects, the tokenizer, glibc's arenas) and is shown beside it.

The estimate is `harness.memory.estimate` for the same shape, batch, lengths and reference model, on the CPU
(float32, one process, HF generate); the prompt length is the longest prompt of the stage's rows in tokens
(the plan's `prompt_tokens`). The target: |estimate / measured - 1| <= 0.30 for both models.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PAPER, VARIANT = "ttrl-majority-vote", "gold_grpo"
TARGET = 0.30
BUILD = ROOT / "results" / "bench" / "memory"


# ----------------------------------------------------------------------------- measuring


def live_tensor_tracker(initial):
    """A TorchDispatchMode whose `.peak` is the most bytes of tensor storage alive at once (from `initial` on)."""
    import torch
    from torch.multiprocessing.reductions import StorageWeakRef
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class Tracker(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.live: dict[int, tuple[StorageWeakRef, int]] = {}
            self.current = self.peak = 0
            for t in initial:
                self._add(t)
            self._sweep()
            self.peak = self.current

        def _add(self, t):
            if not isinstance(t, torch.Tensor) or t.device.type != "cpu":
                return
            s = t.untyped_storage()
            key = s._cdata
            known = self.live.get(key)
            if known is not None and not known[0].expired():
                return
            if known is not None:
                self.current -= known[1]
            self.live[key] = (StorageWeakRef(s), s.nbytes())
            self.current += s.nbytes()

        def _sweep(self):
            for key, (ref, n) in list(self.live.items()):
                if ref.expired():
                    del self.live[key]
                    self.current -= n

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in tree_flatten(out)[0]:
                self._add(t)
            if self.current > self.peak:
                self._sweep()
                self.peak = max(self.peak, self.current)
            return out

    return Tracker()


# ----------------------------------------------------------------------------- the cases


def _world(what: str, name: str) -> Path:
    """A world artefact as the pipeline builds it (`harness world data|convert <name>`), built once."""
    path = ROOT / "results" / "world" / ("data" if what == "data" else "models") / name
    if not path.exists() or not any(path.iterdir()):
        subprocess.run([sys.executable, "-m", "harness", "world", what, name], check=True, cwd=ROOT)
    return path


def toy_model() -> tuple[Path, Path]:
    """An untrained model of the toy-arith shape (memory does not depend on skill) and the toy-arith data."""
    from transformers import AutoTokenizer

    from harness.config.read import load_component
    from harness.layout import CONFIGS
    from harness.world.splits import read_split
    from harness.world.tokenizer import train_tokenizer
    from harness.world.toy_model import build_model

    data, model = _world("data", "toy-arith"), BUILD / "toy-arith-model"
    if not (model / "config.json").is_file():
        train_tokenizer([r["prompt"] + r["answer"] for r in read_split(data, "pretrain")], BUILD / "tok")
        tok = AutoTokenizer.from_pretrained(str(BUILD / "tok"))
        spec = load_component("models", "toy-arith", CONFIGS, "model").toy
        build_model(spec, tok).save_pretrained(model)
        tok.save_pretrained(model)
    return model, data


def smollm2() -> tuple[Path, Path]:
    return _world("convert", "smollm2-135m-instruct"), _world("data", "word-problems")


CASES = {"toy": ("toy", toy_model), "smollm2-135m": ("small-real", smollm2)}


def run_child(case: str, steps: int, result: str) -> None:
    import torch
    from transformers import AutoTokenizer

    from harness.config.load import load_paper
    from harness.stages import StageJob
    from harness.stages.data import chat_prompts, stage_rows
    from harness.stages.grpo import build_trainer, kl_coef

    torch.set_num_threads(2)
    scale, make = CASES[case]
    model, data = make()
    rp = load_paper(PAPER, scale)
    stage = rp.variants[VARIANT].stages[0]
    stage = dataclasses.replace(stage, args={**stage.args, "max_steps": steps, "save_steps": 10**9})
    tok = AutoTokenizer.from_pretrained(str(model))
    rows = stage_rows(rp.dataset, stage.data, stage.data_args, data)
    if stage.args.get("apply_chat_template"):
        rows = chat_prompts(rows, tok)
    prompt_tokens = max(len(tok(p, add_special_tokens=False)["input_ids"]) for p in rows["prompt"])
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with tempfile.TemporaryDirectory(prefix="memory-bench-") as out:
        job = StageJob(stage=stage, model=str(model), dataset=rp.dataset, data_dir=data, seed=0, dir=Path(out),
                       fingerprint="bench")  # fmt: skip
        trainer = build_trainer(job, rows, Path(out))
        initial = [*trainer.model.parameters(), *trainer.model.buffers()]
        if getattr(trainer, "ref_model", None) is not None:
            initial += [*trainer.ref_model.parameters()]
        tracker = live_tensor_tracker(initial)
        with tracker:
            trainer.train()
    a = trainer.args
    config = trainer.model.config
    out = {
        "case": case, "scale": scale, "measured_bytes": tracker.peak,
        "rss_growth_bytes": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) * 1024,
        "params": sum(p.numel() for p in trainer.model.parameters()),
        "shape": {"layers": config.num_hidden_layers, "hidden": config.hidden_size,
                  "intermediate": config.intermediate_size, "heads": config.num_attention_heads,
                  "kv_heads": config.num_key_value_heads, "vocab": config.vocab_size},
        "work": {"micro_batch": a.per_device_train_batch_size, "prompt_tokens": prompt_tokens,
                 "completion_tokens": a.max_completion_length, "generation_batch": a.generation_batch_size,
                 "reference": kl_coef(stage.objective) > 0, "checkpointing": bool(a.gradient_checkpointing)},
    }  # fmt: skip
    Path(result).write_text(json.dumps(out))


def plan_estimate(m: dict):
    from harness.config.parallel import ParallelConfig
    from harness.memory import Shape, Workload, estimate

    w = m["work"]
    shape = Shape(params=m["params"], **m["shape"])
    work = Workload(micro_batch=w["micro_batch"], prompt_tokens=w["prompt_tokens"],
                    completion_tokens=w["completion_tokens"], generation_batch=w["generation_batch"],
                    reference=w["reference"], checkpointing_default=w["checkpointing"])  # fmt: skip
    return estimate(shape, work, ParallelConfig(), on_gpu=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the toy model only")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "results" / "bench" / "memory.json"))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        run_child(a.child, a.steps, a.result)
        return 0
    from harness.memory import GiB

    rows, ok = [], True
    for case in ["toy"] if a.quick else list(CASES):
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            subprocess.run([sys.executable, __file__, "--child", case, "--steps", str(a.steps), "--result", f.name],
                           check=True, env=os.environ | {"TOKENIZERS_PARALLELISM": "false"})  # fmt: skip
            m = json.loads(Path(f.name).read_text())
        est = plan_estimate(m)
        ratio = est.total / m["measured_bytes"]
        ok &= abs(ratio - 1) <= TARGET
        rows.append({**m, "estimate_bytes": est.total, "estimate_parts": est.parts, "ratio": ratio})
        print(f"{case:>14}: estimate {est.total / GiB * 1024:8.1f} MiB  measured peak tensors "
              f"{m['measured_bytes'] / GiB * 1024:8.1f} MiB  ratio {ratio:.2f}  (peak RSS grew "
              f"{m['rss_growth_bytes'] / GiB * 1024:.0f} MiB)\n{'':>16}plan: {est.line()}", flush=True)  # fmt: skip
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(rows, indent=1))
    print(f"{'within' if ok else 'OUTSIDE'} +-{TARGET:.0%} of the measured peak; numbers in {a.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
