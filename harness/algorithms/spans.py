"""Spans of a completion that carry no loss: text the policy writes but is not trained to write.

SSRL's policy writes its search results itself (`<information>...</information>`) and the loss skips those tokens,
as Search-R1 skips the results an engine inserts. A GRPO stage's `objective.masked_spans` lists [open, close] tag
pairs; each span from an opening tag through the next closing tag, both tags included, is masked, and an opening tag
that never closes masks nothing (as SSRL's `create_information_loss_mask`, verl/trainer/ppo/ray_trainer.py at
3009f21, lines 1236-1263). A token is masked when all of its text lies inside a span: a token that straddles a
span's edge keeps its loss.

Tokens are located by their own text (each token decoded alone, concatenated): the tags are found in that string,
so positions stay consistent even where a token decoded alone differs from its part of the whole text (a split
multi-byte character, a dropped leading space), as long as a tag's characters are whole in it (ASCII tags are).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate


def spans_in(text: str, pairs: Sequence[Sequence[str]]) -> list[tuple[int, int]]:
    """The [start, stop) character ranges of `text` from each opening tag through the next closing tag.

    >>> spans_in("a<i>xy</i>b<i>z", [("<i>", "</i>")])  # the second never closes
    [(1, 10)]
    >>> spans_in("[q]=doc;ans", [("=", ";")])
    [(3, 8)]
    """
    ranges = []
    for open_, close in pairs:
        at = 0
        while (start := text.find(open_, at)) != -1 and (end := text.find(close, start + len(open_))) != -1:
            ranges.append((start, end + len(close)))
            at = end + len(close)
    return sorted(ranges)


def span_mask(pieces: Sequence[str], pairs: Sequence[Sequence[str]]) -> list[int]:
    """1 for each token (given by its text, in order) that keeps its loss, 0 for one wholly inside a masked span.

    >>> span_mask(["[q]", "=", "do", "c", ";", "ans"], [("=", ";")])
    [1, 0, 0, 0, 0, 1]
    >>> span_mask(["a<i>", "x", "</i>b"], [("<i>", "</i>")])  # the first and last straddle the span's edges
    [1, 0, 1]
    """
    ranges = spans_in("".join(pieces), pairs)
    ends = list(accumulate(map(len, pieces)))
    return [
        0 if any(s <= end - len(p) and end <= e for s, e in ranges) else 1 for p, end in zip(pieces, ends, strict=True)
    ]
