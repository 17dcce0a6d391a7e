"""Sampling metrics from n samples per question: pass@k (unbiased), maj@k, avg@n, diversity.

`correct` is a (questions, n) table of 0/1 grades; `answers` the extracted answers, same shape;
`responses` the raw texts, same shape. Besides the metrics, a task's numbers hold two counts of what was
graded and the sampling error of pass@1 over its questions (COUNTS), which are not averaged into suite
averages, plotted or claimed on.
"""

from __future__ import annotations

import random
import re
from math import comb

from harness.grader import majority_answer

COUNTS = ("samples_per_question", "questions", "stderr/pass@1")
"""Counts of what was graded and pass@1's standard error over questions, beside the metrics in a task's numbers."""
BOOTSTRAP = 1000
"""Resamples of the questions behind `stderr/pass@1`."""


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one question with c correct of n samples: 1 - C(n-c, k) / C(n, k).

    >>> pass_at_k(4, 1, 1), pass_at_k(4, 1, 2), pass_at_k(4, 0, 4), pass_at_k(4, 3, 2)
    (0.25, 0.5, 0.0, 1.0)
    """
    if not 1 <= k <= n:
        raise ValueError(f"k={k} outside 1..{n}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def pass_curve(correct: list[list[int]]) -> dict[int, float]:
    """Mean pass@k over questions, for every k from 1 to n."""
    n = _width(correct)
    return {k: sum(pass_at_k(n, sum(row), k) for row in correct) / len(correct) for k in range(1, n + 1)}


def maj_at_k(answers: list[list[str | None]], golds: list[str], k: int, draws: int = 16, seed: int = 0) -> float:
    """Mean over questions of the majority-vote accuracy of k samples.

    With k == n this is exact; with k < n it averages `draws` random k-subsets per question.
    """
    n = _width(answers)
    rng = random.Random(seed)
    total = 0.0
    for row, gold in zip(answers, golds, strict=True):
        subsets = [row] if k == n else [rng.sample(row, k) for _ in range(draws)]
        total += sum(majority_answer(s) == gold for s in subsets) / len(subsets)
    return total / len(answers)


_TOKEN = re.compile(r"\w+|[^\w\s]")


def distinct_n(responses: list[str], n: int) -> float:
    """Distinct n-grams over all n-grams of one question's responses (words and punctuation marks).

    1.0: no n-gram repeats across the samples; near 0: the samples say the same thing.

    >>> distinct_n(["46;51", "46;52"], 1), distinct_n(["a b a", "a b"], 2)
    (0.6666666666666666, 0.6666666666666666)
    """
    grams = [tuple(t[i : i + n]) for r in responses for t in [_TOKEN.findall(r)] for i in range(len(t) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def summarize(
    answers: list[list[str | None]],
    golds: list[str],
    responses: list[list[str]] | None = None,
    lengths: list[list[int]] | None = None,
) -> dict[str, float]:
    """All sampling metrics of one evaluation, keyed as they are logged (pass@k, maj@k, ...). With `lengths` (tokens
    of each response, same shape), the mean response length `length/all`, and over the right and the wrong responses
    `length/correct` and `length/wrong` (each only when there is such a response)."""
    correct = [[int(a is not None and a == g) for a in row] for row, g in zip(answers, golds, strict=True)]
    n = _width(correct)
    out = {f"pass@{k}": v for k, v in pass_curve(correct).items()}
    for k in sorted({1, *_powers_of_two(n), n}):
        out[f"maj@{k}"] = maj_at_k(answers, golds, k)
    out["avg@n"] = out["pass@1"]
    out["distinct_answers"] = sum(len({a for a in row if a is not None}) for row in answers) / len(answers)
    out["distinct_correct"] = sum(
        len({a for a, c in zip(r, cr, strict=True) if c}) for r, cr in zip(answers, correct, strict=True)
    ) / len(answers)
    if responses is not None:
        for g in (1, 2):
            out[f"distinct_{g}"] = sum(distinct_n(r, g) for r in responses) / len(responses)
    if lengths is not None:
        pairs = [(t, c) for ts, cs in zip(lengths, correct, strict=True) for t, c in zip(ts, cs, strict=True)]
        out["length/all"] = sum(t for t, _ in pairs) / len(pairs)
        for name, want in (("length/correct", 1), ("length/wrong", 0)):
            chosen = [t for t, c in pairs if c == want]
            if chosen:
                out[name] = sum(chosen) / len(chosen)
    out["samples_per_question"] = n
    out["questions"] = len(answers)
    out["stderr/pass@1"] = bootstrap_se([sum(row) / n for row in correct])
    return out


def bootstrap_se(values: list[float], draws: int = BOOTSTRAP, seed: int = 0) -> float:
    """The standard error of the mean of `values` from `draws` resamples with replacement (seeded): how much
    pass@1 would move on another draw of as many questions. Small benchmarks (AIME's 30) have large ones.

    >>> bootstrap_se([1.0] * 30), round(bootstrap_se([0.0, 1.0] * 15), 2)
    (0.0, 0.09)
    """
    import numpy as np

    x = np.asarray(values, dtype=float)
    picks = np.random.default_rng(seed).integers(0, len(x), size=(draws, len(x)))
    return float(x[picks].mean(axis=1).std(ddof=1))


def _powers_of_two(n: int) -> list[int]:
    return [2**i for i in range(n.bit_length()) if 2**i <= n]


def _width(table: list[list]) -> int:
    widths = {len(row) for row in table}
    if len(widths) != 1 or not table:
        raise ValueError(f"need the same number of samples for every question, got {sorted(widths)}")
    return widths.pop()
