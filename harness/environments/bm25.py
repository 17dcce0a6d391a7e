"""Okapi BM25: ranks a small in-memory collection of documents against a query (the retrieval environment's search).

For a query Q (its distinct words) and a document D of the N documents,

    score(D, Q) = sum_{q in Q} idf(q) * f(q, D) * (k1 + 1) / (f(q, D) + k1 * (1 - b + b * |D| / avgdl))
    idf(q)      = ln((N - n(q) + 0.5) / (n(q) + 0.5) + 1)

f(q, D): how often q occurs in D; |D|: D's length in words; avgdl: the mean length of the N documents; n(q): how
many documents contain q. The "+ 1" inside the logarithm keeps idf positive, so a word found in every document
still counts a little. Words are the lowercase runs of [a-z0-9] (`words`); a document sharing no word with the
query scores 0.
"""

from __future__ import annotations

import math
import re
from collections import Counter

WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """The text's words, lowercased.

    >>> words("Zorba's color: RED-ish, 42")
    ['zorba', 's', 'color', 'red', 'ish', '42']
    """
    return WORD.findall(text.lower())


class BM25:
    """An index over `documents` (strings, kept as given in `.documents`), searched with `search`.

    >>> index = BM25(["red fox", "blue fox jumps", "green owl"])
    >>> [i for i, _ in index.search("a fox", k=5)], index.search("yak", k=5)
    ([0, 1], [])
    """

    def __init__(self, documents: list[str], k1: float = 1.2, b: float = 0.75) -> None:
        self.documents, self.k1, self.b = list(documents), k1, b
        counts = [Counter(words(d)) for d in self.documents]
        self.lengths = [sum(c.values()) for c in counts]
        self.avgdl = sum(self.lengths) / max(len(counts), 1)
        self.postings: dict[str, list[tuple[int, int]]] = {}
        """word -> (document index, occurrences) of every document containing it."""
        for i, c in enumerate(counts):
            for word, f in c.items():
                self.postings.setdefault(word, []).append((i, f))
        n = len(counts)
        self.idf = {word: math.log((n - len(p) + 0.5) / (len(p) + 0.5) + 1) for word, p in self.postings.items()}

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """The k best (document index, score) pairs, best first, ties to the lower index; documents scoring 0
        (no word in common with the query) are left out."""
        scores: dict[int, float] = {}
        for word in sorted(set(words(query))):  # a fixed order of summation: the same floats on every run
            for i, f in self.postings.get(word, ()):
                norm = self.k1 * (1 - self.b + self.b * self.lengths[i] / self.avgdl)
                scores[i] = scores.get(i, 0.0) + self.idf[word] * f * (self.k1 + 1) / (f + norm)
        return sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))[:k]
