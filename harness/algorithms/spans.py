"""Spans of a completion that carry no loss: text the policy writes but is not trained to write.

SSRL's policy writes its search results itself (`<information>...</information>`) and the loss skips those tokens,
as Search-R1 skips the results an engine inserts. A GRPO stage's `objective.masked_spans` lists [open, close] tag
pairs; the text between an opening tag and the next closing tag is masked (to the end when it never closes),
the tags themselves keep their loss (the policy must still learn to write them). A token is masked when all of its
text lies inside a span: a token that straddles a tag keeps its loss.

Tokens are located by their own text (each token decoded alone, concatenated): the tags are found in that string,
so positions stay consistent even where a token decoded alone differs from its part of the whole text (a split
multi-byte character, a dropped leading space), as long as a tag's characters are whole in it (ASCII tags are).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate


def spans_in(text: str, pairs: Sequence[Sequence[str]]) -> list[tuple[int, int]]:
    """The [start, stop) character ranges of `text` between each opening tag and the next closing tag.

    >>> spans_in("a<i>xy</i>b<i>z", [("<i>", "</i>")])
    [(4, 6), (14, 15)]
    >>> spans_in("[q]=doc;ans", [("=", ";")])
    [(4, 7)]
    """
    ranges = []
    for open_, close in pairs:
        at = 0
        while (found := text.find(open_, at)) != -1:
            start = found + len(open_)
            end = text.find(close, start)
            if end == -1:
                ranges.append((start, len(text)))
                break
            ranges.append((start, end))
            at = end + len(close)
    return sorted(ranges)


def span_mask(pieces: Sequence[str], pairs: Sequence[Sequence[str]]) -> list[int]:
    """1 for each token (given by its text, in order) that keeps its loss, 0 for one wholly inside a masked span.

    >>> span_mask(["[q]", "=", "do", "c", ";", "ans"], [("=", ";")])
    [1, 1, 0, 0, 1, 1]
    >>> span_mask(["<i>x", "y</i>"], [("<i>", "</i>")])  # each token straddles a tag: both keep their loss
    [1, 1]
    """
    ranges = spans_in("".join(pieces), pairs)
    ends = list(accumulate(map(len, pieces)))
    return [
        0 if any(s <= end - len(p) and end <= e for s, e in ranges) else 1 for p, end in zip(pieces, ends, strict=True)
    ]
