"""Evaluation protocols as data: what makes two evaluation results comparable, and how they differ.

Every evaluation writes its protocol (harness.evaluation.evaluate.protocol) beside its metrics: samples
per question, sampling settings, seed, chat template, answer extractors and their versions,
engine and versions. Results are compared only through `differences`, so every comparison
(leaderboard rows, claims, reported numbers, `harness compare`) says when protocols differ.
"""

from __future__ import annotations

from typing import Any

IGNORED = frozenset({"seed", "seconds"})
"""Fields that may differ between results that are still comparable: seeds are what a mean is over."""


def differences(a: dict[str, Any], b: dict[str, Any], ignore: frozenset[str] = IGNORED) -> list[str]:
    """Human-readable differences between two fingerprints, e.g. `n_samples: 16 vs 4`; [] when comparable.

    A field missing on one side counts as a difference (an older result recorded less).

    >>> differences({"n_samples": 16, "seed": 0}, {"n_samples": 4, "seed": 1})
    ['n_samples: 16 vs 4']
    >>> differences({"engine": "hf"}, {"engine": "hf", "tensor_parallel_size": 1})
    ['tensor_parallel_size: (not recorded) vs 1']
    """
    out = []
    for key in sorted((a.keys() | b.keys()) - ignore):
        va, vb = a.get(key, _MISSING), b.get(key, _MISSING)
        if va != vb:
            out.append(f"{key}: {_show(va)} vs {_show(vb)}")
    return out


def common(
    fingerprints: list[dict[str, Any]], ignore: frozenset[str] = IGNORED
) -> tuple[dict[str, Any], dict[int, list[str]]]:
    """The protocol shared by several results (the first one's, less ignored fields) and, by index,
    how each other result departs from it.

    >>> common([{"n_samples": 8, "seed": 0}, {"n_samples": 8, "seed": 1}, {"n_samples": 4, "seed": 2}])
    ({'n_samples': 8}, {2: ['n_samples: 8 vs 4']})
    """
    first = fingerprints[0]
    departures = {i: d for i, fp in enumerate(fingerprints) if (d := differences(first, fp, ignore))}
    return {k: v for k, v in first.items() if k not in ignore}, departures


_MISSING = object()


def _show(v: Any) -> str:
    return "(not recorded)" if v is _MISSING else repr(v) if isinstance(v, str) and not v else str(v)
