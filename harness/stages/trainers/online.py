"""Online data filtering inside the GRPO trainer: filter each generated batch's prompt groups by their rewards and
refill it with fresh prompts (the filter is a registered piece, harness/algorithms/filters.py).

One training step, per process:
  1. TRL's sampler gives the step's prompts (whole groups of `num_generations` per process); they are generated and
     scored as usual, and the filter marks the groups to keep.
  2. While fewer groups are kept than the batch holds, and for at most the filter's `max_rounds`, a batch of fresh
     prompts is drawn from the training set, generated and scored. Every process runs the same number of rounds
     (generation is collective under FSDP and vLLM), so a process already full generates and discards.
  3. The batch is the kept groups in the order they came, topped up, if the rounds ran out, with dropped groups
     (they train with their zero advantages, as unfiltered GRPO would), all tensors padded to common widths.

Fresh prompts are drawn by a generator seeded by (seed, step, round, process), so a resumed run draws what the
uninterrupted one drew; with `skip_seen` the draw passes over prompts whose last group the filter dropped (their
per-prompt statistics); with `replay_below` it takes first, in the same order, the hard prompts to replay: those
whose last group was kept with a mean reward below it, other than the prompts this step has already generated.
Statistics and the per-step record of the prompts trained on are saved in every checkpoint (one file per process)
and restored on resume. Logged per step: `filter/drawn` (groups generated), `filter/kept` (kept groups in the
batch), `filter/rounds`, `filter/topped_up` (dropped groups used to fill), `filter/replayed` (groups drawn for
replay). TRL's own reward and length metrics average over every group generated, kept or not.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from harness.algorithms import ONLINE_FILTERS
from harness.layout import write_atomic

if TYPE_CHECKING:
    from harness.config.stage import PieceSpec

STATE_FILE = "online_filter.{rank}.json"
"""Inside a GRPO checkpoint: one process's per-prompt statistics and record of kept prompts."""


def prompt_key(row: dict) -> str:
    """A row's identity for its statistics: its `id`, else a hash of its prompt."""
    if "id" in row and row["id"] is not None:
        return str(row["id"])
    return hashlib.sha256(json.dumps(row.get("prompt"), sort_keys=True, default=str).encode()).hexdigest()[:16]


class OnlineFilter:
    def __init__(self, spec: PieceSpec, dataset, num_generations: int, seed: int, rank: int = 0) -> None:
        self.filter = ONLINE_FILTERS.get(spec.name)(**spec.args)
        self.dataset, self.n, self.seed, self.rank = dataset, num_generations, seed, rank
        self.stats: dict[str, list[float]] = {}
        """Prompt key -> the rewards of its last group."""
        self.history: list[list] = []
        """[step, [keys of the groups trained on]] per step, in batch order."""
        self.replayed = 0
        """Groups the last draw took for replay."""

    # -- drawing

    def replayable(self, key: str) -> bool:
        """Whether the prompt's last group was kept with a mean reward below `replay_below` (a hard prompt to replay)."""
        last, below = self.stats.get(key), self.filter.replay_below
        if last is None or below is None:
            return False
        group = torch.tensor([last])
        return bool(self.filter.keep(group)[0]) and torch.nanmean(group).item() < below

    def draw(self, step: int, round_: int, groups: int, exclude: frozenset[str] = frozenset()) -> list[dict]:
        """`groups` prompts, each repeated num_generations times (deterministic in step, round and process): the
        hard prompts to replay first (not those in `exclude`, this step's), then fresh ones."""
        rng = random.Random(f"{self.seed}:{step}:{round_}:{self.rank}")
        order = rng.sample(range(len(self.dataset)), len(self.dataset))
        self.replayed = 0
        if self.filter.replay_below is not None:
            keys = (prompt_key(self.dataset[i]) for i in order)
            hard = [key not in exclude and self.replayable(key) for key in keys]
            again = [i for i, h in zip(order, hard, strict=True) if h]
            self.replayed = min(len(again), groups)
            order = again + [i for i, h in zip(order, hard, strict=True) if not h]
        picked, passed = [], []
        for i in order:
            if len(picked) == groups:
                break
            last = self.stats.get(prompt_key(self.dataset[i]))
            if self.filter.skip_seen and last is not None and not bool(self.filter.keep(torch.tensor([last]))[0]):
                passed.append(i)
                continue
            picked.append(i)
        picked += passed[: groups - len(picked)]
        while len(picked) < groups:  # a training set smaller than a batch: draw again
            picked.append(order[len(picked) % len(order)])
        return [self.dataset[i] for i in picked for _ in range(self.n)]

    # -- one step

    def batch(self, trainer, inputs: list[dict]) -> dict:
        """The step's batch (see the module docstring); `trainer._scored(rows)` generates and scores rows."""
        n, acc = self.n, trainer.accelerator
        if len(inputs) % n:
            raise ValueError(f"online_filter: this process holds {len(inputs)} samples, not whole groups of "
                             f"num_generations={n}; make per_device_train_batch_size x steps_per_generation a "
                             "multiple of num_generations")  # fmt: skip
        want, step = len(inputs) // n, trainer.state.global_step
        outs, rows, kept, rounds, rows_in, replayed = [], [], [], 0, inputs, 0
        while True:
            out = trainer._scored(rows_in)
            local = trainer._last_rewards[acc.process_index * len(rows_in) : (acc.process_index + 1) * len(rows_in)]
            groups = local.view(-1, n).float().cpu()
            keep = self.filter.keep(groups)
            for g in range(len(groups)):
                self.stats[prompt_key(rows_in[g * n])] = groups[g].tolist()
            outs.append(out)
            kept += [(len(rows) // n + g, bool(k)) for g, k in enumerate(keep.tolist())]
            rows += rows_in
            short = torch.tensor(float(max(0, want - sum(k for _, k in kept))), device=acc.device)
            if rounds >= self.filter.max_rounds or acc.gather(short.reshape(1)).max().item() == 0:
                break
            rounds += 1
            rows_in = self.draw(step, rounds, want, frozenset(prompt_key(r) for r in rows[::n]))
            replayed += self.replayed
        chosen = [g for g, k in kept if k][:want]
        topped = want - len(chosen)
        chosen += [g for g, k in kept if not k][:topped]
        index = torch.tensor([g * n + j for g in chosen for j in range(n)])
        batch = select(concat(outs, trainer.processing_class.pad_token_id), index)
        loss_mask = batch["completion_mask"] * batch["tool_mask"] if "tool_mask" in batch else batch["completion_mask"]
        batch["num_items_in_batch"] = acc.gather(loss_mask.sum()).sum()
        self.history.append([step, [prompt_key(rows[g * n]) for g in chosen]])
        totals = acc.gather(torch.tensor([[len(rows) // n, len(chosen) - topped, rounds, topped, replayed]],
                                         device=acc.device))  # fmt: skip
        metrics = trainer._metrics["train"]
        for j, name in enumerate(("drawn", "kept", "rounds", "topped_up", "replayed")):
            values = totals[:, j].float()
            metrics[f"filter/{name}"].append((values.max() if name == "rounds" else values.sum()).item())
        return batch

    # -- checkpoints

    def save(self, folder: Path) -> None:
        write_atomic(folder / STATE_FILE.format(rank=self.rank), json.dumps({"stats": self.stats,
                                                                               "history": self.history}))  # fmt: skip

    def load(self, folder: Path) -> None:
        file = Path(folder) / STATE_FILE.format(rank=self.rank)
        if not file.is_file():
            raise FileNotFoundError(f"{file} missing: cannot resume the online filter's per-prompt statistics")
        state = json.loads(file.read_text())
        self.stats, self.history = state["stats"], state["history"]


def concat(outs: list[dict], pad_id: int) -> dict:
    """Scored batches as one: per-sample tensors concatenated, padded to the widest (prompts on the left, like TRL's
    prompts; everything else on the right), ids with the pad token; per-sample lists joined; the rest from the first.
    """
    if len(outs) == 1:
        return dict(outs[0])
    sizes = [len(o["completion_ids"]) for o in outs]
    merged = {}
    for key, first in outs[0].items():
        values = [o.get(key) for o in outs]
        if isinstance(first, torch.Tensor) and first.dim() >= 1 and all(
            isinstance(v, torch.Tensor) and v.dim() == first.dim() and len(v) == s for v, s in zip(values, sizes, strict=True)
        ):  # fmt: skip
            if first.dim() >= 2:
                width = max(v.size(1) for v in values)
                fill = pad_id if key.endswith("_ids") else 0
                left = key.startswith("prompt")
                values = [torch.nn.functional.pad(v, (width - v.size(1), 0) if left else (0, width - v.size(1)),
                                                  value=fill) for v in values]  # fmt: skip
            merged[key] = torch.cat(values)
        elif isinstance(first, list) and all(
            isinstance(v, list) and len(v) == s for v, s in zip(values, sizes, strict=True)
        ):
            merged[key] = [x for v in values for x in v]
        else:
            merged[key] = first
    return merged


def select(batch: dict, index: torch.Tensor) -> dict:
    """The samples at `index` of every per-sample tensor and list of a batch."""
    size = len(batch["completion_ids"])
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and value.dim() >= 1 and len(value) == size:
            out[key] = value.index_select(0, index.to(value.device))
        elif isinstance(value, list) and len(value) == size:
            out[key] = [value[i] for i in index.tolist()]
        else:
            out[key] = value
    return out
