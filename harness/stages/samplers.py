"""GRPO's prompt samplers, resumable in any epoch.

TRL's `RepeatSampler` shuffles with a generator seeded once and drawn from once per epoch, so epoch e's order is
the (e+1)-th permutation it draws. A run resumed from a checkpoint in epoch e > 0 builds a fresh sampler and never
iterated the epochs before: it used to draw the first epoch's order again, and went on from its checkpoint with
other prompts than the uninterrupted run (measured: a toy GRPO stage resumed at step 25 of 100, 15 steps an epoch,
ended with other weights). `EpochSeek.set_epoch`, which the Trainer calls (through accelerate's data loader)
before every epoch and after resuming, puts the generator where epoch e begins. An uninterrupted run draws the same
orders as before.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence

import torch
from torch.utils.data import Sampler
from trl.trainer.utils import RepeatSampler


class EpochSeek:
    """Mixin for a sampler that shuffles `_shuffled()` items with `self.generator` (seeded with `self.seed`), one
    permutation per epoch: `set_epoch(e)` leaves the generator as e epochs of draws left it."""

    def _shuffled(self) -> int:
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        if not self.shuffle:
            return
        self.generator = torch.Generator()
        if self.seed is not None:
            self.generator.manual_seed(self.seed)
        for _ in range(epoch):
            torch.randperm(self._shuffled(), generator=self.generator)


class ResumableRepeatSampler(EpochSeek, RepeatSampler):
    """TRL's GRPO sampler, its order in epoch e the same whether the run started in it or before it.

    >>> s = ResumableRepeatSampler(range(6), mini_repeat_count=1, batch_size=3, seed=0)
    >>> first, second = list(s), list(s)
    >>> s.set_epoch(1); list(s) == second
    True
    >>> s.set_epoch(0); list(s) == first
    True
    """

    def _shuffled(self) -> int:
        return self.num_samples


class PairedRepeatSampler(EpochSeek, Sampler):
    """TRL's GRPO `RepeatSampler`, shuffling pairs instead of rows, so that twins share a batch.

    Rows with the same `pairs` value are taken two at a time in dataset order (a row and its
    twin, as `add_paraphrases` lays them out); these units are shuffled, cut into chunks of
    `batch_size` distinct prompts (even, so no unit is split; an incomplete last chunk is
    dropped), and each chunk is yielded `repeat_count` times with every index `mini_repeat_count`
    times in a row. Each epoch has a new order, resumable as `EpochSeek` says.

    >>> list(PairedRepeatSampler([7, 7, 8, 8], mini_repeat_count=2, batch_size=2, shuffle=False))
    [0, 0, 1, 1, 2, 2, 3, 3]
    """

    def __init__(self, pairs: Sequence[Hashable], mini_repeat_count: int, batch_size: int, repeat_count: int = 1,
                 shuffle: bool = True, seed: int | None = None):  # fmt: skip
        if batch_size % 2:
            raise ValueError(f"PairedRepeatSampler: batch_size must be even to hold whole pairs, got {batch_size}")
        self.units = pair_units(pairs)
        self.num_samples = len(pairs)
        self.mini_repeat_count, self.batch_size, self.repeat_count = mini_repeat_count, batch_size, repeat_count
        self.shuffle, self.seed = shuffle, seed
        self.set_epoch(0)

    def __iter__(self) -> Iterator[int]:
        order = torch.randperm(len(self.units), generator=self.generator).tolist() if self.shuffle else None
        indexes = [i for u in (order or range(len(self.units))) for i in self.units[u]]
        for start in range(0, len(indexes) - self.batch_size + 1, self.batch_size):
            chunk = indexes[start : start + self.batch_size]
            for _ in range(self.repeat_count):
                for index in chunk:
                    yield from [index] * self.mini_repeat_count

    def _shuffled(self) -> int:
        return len(self.units)

    def __len__(self) -> int:
        return (self.num_samples // self.batch_size) * self.batch_size * self.mini_repeat_count * self.repeat_count


def pair_units(pairs: Sequence[Hashable]) -> list[tuple[int, int]]:
    """Indices of rows sharing a pair value, two at a time in dataset order.

    >>> pair_units(["a", "b", "a", "b", "a", "a"])
    [(0, 2), (1, 3), (4, 5)]
    """
    groups: dict[Hashable, list[int]] = {}
    for i, p in enumerate(pairs):
        groups.setdefault(p, []).append(i)
    odd = [p for p, idx in groups.items() if len(idx) % 2]
    if odd:
        raise ValueError(f"PairedRepeatSampler: pair values {odd[:5]} have an odd number of rows (a twin is missing)")
    return sorted((idx[k], idx[k + 1]) for idx in groups.values() for k in range(0, len(idx), 2))
