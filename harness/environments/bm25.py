"""Okapi BM25: ranks a collection of documents against a query (the retrieval environment's search).

For a query Q (its distinct words) and a document D of the N documents,

    score(D, Q) = sum_{q in Q} idf(q) * f(q, D) * (k1 + 1) / (f(q, D) + k1 * (1 - b + b * |D| / avgdl))
    idf(q)      = ln((N - n(q) + 0.5) / (n(q) + 0.5) + 1)

f(q, D): how often q occurs in D; |D|: D's length in words; avgdl: the mean length of the N documents; n(q): how
many documents contain q. The "+ 1" inside the logarithm keeps idf positive, so a word found in every document
still counts a little. Words are the lowercase runs of [a-z0-9] (`words`); a document sharing no word with the
query scores 0.

The index is a table of postings: per word (in alphabetical order), the documents holding it and how often, as
flat arrays. `BM25(documents)` builds it in memory; harness/environments/corpus_index.py writes the same arrays to
disk from a corpus of any size and opens them memory-mapped, so every process on a node shares one copy in the page
cache. Either way `search` computes the same floats in the same order: the ranking does not depend on where the
index lives.
"""

from __future__ import annotations

import bisect
import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

WORD = re.compile(r"[a-z0-9]+")
COMMON = 0.05
"""A word held by more than this share of the documents is common: `search` scores it only where it must."""


def words(text: str) -> list[str]:
    """The text's words, lowercased.

    >>> words("Zorba's color: RED-ish, 42")
    ['zorba', 's', 'color', 'red', 'ish', '42']
    """
    return WORD.findall(text.lower())


def idf(documents: int, holding: np.ndarray) -> np.ndarray:
    """idf per word from how many documents hold it (math.log per word: the same floats wherever it is computed)."""
    return np.array([math.log((documents - n + 0.5) / (n + 0.5) + 1) for n in holding.tolist()], dtype=np.float64)


class BM25:
    """An index searched with `search`: `vocabulary` (the words, sorted), `starts` (word w's postings are
    `starts[w]:starts[w + 1]`), `doc_ids` and `counts` (per posting: the document, the word's occurrences in it,
    documents ascending within a word), `lengths` (words per document) and `documents` (their texts, by index).

    >>> index = BM25(["red fox", "blue fox jumps", "green owl"])
    >>> [i for i, _ in index.search("a fox", k=5)], index.search("yak", k=5)
    ([0, 1], [])
    """

    def __init__(self, documents: Sequence[str], k1: float = 1.2, b: float = 0.75, *,
                 arrays: dict[str, np.ndarray] | None = None, vocabulary: Sequence[str] | None = None) -> None:  # fmt: skip
        self.documents, self.k1, self.b = documents, k1, b
        if arrays is None:
            self.documents = list(documents)
            vocabulary, arrays = postings(Counter(words(d)) for d in self.documents)
        self.vocabulary = vocabulary
        self.starts, self.doc_ids, self.counts = arrays["starts"], arrays["doc_ids"], arrays["counts"]
        self.lengths = arrays["lengths"]
        n = len(self.lengths)
        if len(self.documents) != n:
            raise ValueError(f"BM25: {len(self.documents)} texts for {n} indexed documents")
        self.avgdl = int(self.lengths.sum()) / max(n, 1)
        self.idf = arrays["idf"] if "idf" in arrays else idf(n, np.diff(self.starts))

    def word_id(self, word: str) -> int | None:
        i = bisect.bisect_left(self.vocabulary, word)
        return i if i < len(self.vocabulary) and self.vocabulary[i] == word else None

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """The k best (document index, score) pairs, best first, ties to the lower index; documents scoring 0
        (no word in common with the query) are left out.

        Words held by more than COMMON of the documents ("the" of a Wikipedia dump: millions of postings) are
        looked up only in the documents a rarer query word holds, when the k-th best of those provably beats every
        other document: one holding common words alone scores at most the sum of their idf * (k1 + 1) (MaxScore's
        bound). Otherwise every posting is scored. Both ways give the same documents and the same floats."""
        found = [w for w in map(self.word_id, sorted(set(words(query)))) if w is not None]
        if not found or k < 1:
            return []
        held = {w: int(self.starts[w + 1] - self.starts[w]) for w in found}
        common = [w for w in found if held[w] > COMMON * len(self.lengths)]
        if common and len(common) < len(found):
            rare = [self._postings(w)[0] for w in found if w not in common]
            candidates = np.unique(np.concatenate(rare))
            if len(candidates) >= k:
                scores = self._score(candidates, found)
                kth = np.partition(scores, len(scores) - k)[len(scores) - k]
                if kth > sum(float(self.idf[w]) * (self.k1 + 1) for w in common) * (1 + 1e-9):  # ulps of slack
                    return self._best(candidates, scores, k)
        ids, parts = [], []
        for w in found:  # a fixed order of summation (the words sorted): the same floats on every run
            doc, f = self._postings(w)
            ids.append(doc)
            parts.append(self._part(w, doc, f))
        docs, where = np.unique(np.concatenate(ids), return_inverse=True)
        return self._best(docs, np.bincount(where, weights=np.concatenate(parts)), k)  # parts added in word order

    def _postings(self, w: int) -> tuple[np.ndarray, np.ndarray]:
        start, end = int(self.starts[w]), int(self.starts[w + 1])
        return self.doc_ids[start:end], self.counts[start:end]

    def _part(self, w: int, doc: np.ndarray, f: np.ndarray) -> np.ndarray:
        """Word w's term of the score of each document `doc` holding it `f` times."""
        f = f.astype(np.float64)
        norm = self.k1 * (1 - self.b + self.b * self.lengths[doc].astype(np.float64) / self.avgdl)
        return self.idf[w] * f * (self.k1 + 1) / (f + norm)

    def _score(self, docs: np.ndarray, found: list[int]) -> np.ndarray:
        """The scores of `docs` (ascending), each word's postings searched for them (they are sorted by document)."""
        scores = np.zeros(len(docs))
        for w in found:  # the words in the same order as the full sum, each adding to the documents holding it
            held, f = self._postings(w)
            at = np.searchsorted(held, docs)
            hit = at < len(held)
            hit[hit] = held[at[hit]] == docs[hit]
            scores[hit] += self._part(w, docs[hit], f[at[hit]])
        return scores

    @staticmethod
    def _best(docs: np.ndarray, scores: np.ndarray, k: int) -> list[tuple[int, float]]:
        if len(scores) > k:  # only the candidates at or above the k-th best score need ordering
            keep = scores >= np.partition(scores, len(scores) - k)[len(scores) - k]
            docs, scores = docs[keep], scores[keep]
        best = np.lexsort((docs, -scores))[:k]
        return [(int(docs[i]), float(scores[i])) for i in best]


def postings(counted) -> tuple[list[str], dict[str, np.ndarray]]:
    """The index arrays of documents given as word counts (an iterable of Counters, in document order)."""
    by_word: dict[str, list[tuple[int, int]]] = {}
    lengths = []
    for i, c in enumerate(counted):
        lengths.append(sum(c.values()))
        for word, f in c.items():
            by_word.setdefault(word, []).append((i, f))
    vocabulary = sorted(by_word)
    flat = [p for word in vocabulary for p in by_word[word]]
    sizes = [len(by_word[word]) for word in vocabulary]
    return vocabulary, {
        "starts": np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64),
        "doc_ids": np.array([d for d, _ in flat], dtype=np.int64),
        "counts": np.array([f for _, f in flat], dtype=np.int64),
        "lengths": np.array(lengths, dtype=np.int64),
    }
