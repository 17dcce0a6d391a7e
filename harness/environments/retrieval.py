"""A search tool: the model writes query words in square brackets, the environment answers with the documents that
match them best (BM25, harness/environments/bm25.py) from a corpus file.

An episode on the prompt `color of zorba?` (the toy world harness/world/retrieval.py writes its demonstrations with
`call_text` and `observation_text`, so they match this environment exactly):

    model:        [zorba color]                             a call: `[QUERY WORDS]` ending the turn ("]" is the stop
                                                            string)
    environment:  =zorba color red city oslo animal yak;    `=TEXT;`: the top_k documents' texts joined by " | ";
                                                            `=none;` when no document shares a word with the query,
                                                            `=?;` for a call without query words
    model:        red                                       a turn without a call is the final answer: its text, a word

The corpus is a JSONL file of {"id", "text"}, read and indexed once per factory call, or at paper scale the folder
of its index built on the head node (harness/corpora.py), opened memory-mapped; its texts should hold no ";" (the
end of an observation). The episode's reward is 1 when the final answer equals the row's `answer` (case-insensitively),
else 0 (also when no final answer came before the turn limit), minus `call_penalty` per call (a per-turn reward: a
cost of searching). `noise`: the share of calls answered with a document drawn at random instead of the search's
best (a degraded engine, as a simulated search engine is; drawn from a hash of the question, the query and the
call's number, so a rerun answers alike).
"""

from __future__ import annotations

import hashlib
import json
import random
from functools import partial
from pathlib import Path

from harness.environments import Turn, register_environment, without_eos
from harness.environments.bm25 import BM25, words

OPEN, CLOSE = "[", "]"
SEPARATOR = " | "
NO_HITS = "none"


def call_text(query: str) -> str:
    """A call as the model writes it.

    >>> call_text("zorba color")
    '[zorba color]'
    """
    return f"{OPEN}{query}{CLOSE}"


def observation_text(documents: list[str] | None) -> str:
    """The environment's answer to a call: the documents' texts, `=none;` when there are none, `=?;` for an invalid
    call (None).

    >>> observation_text(["zorba color red", "kela color blue"]), observation_text([]), observation_text(None)
    ('=zorba color red | kela color blue;', '=none;', '=?;')
    """
    if documents is None:
        return "=?;"
    return f"={SEPARATOR.join(documents) or NO_HITS};"


def read_corpus(path: str | Path) -> list[str]:
    """The texts of a corpus file (JSONL of {"id", "text"}), in file order."""
    with open(path) as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


class Retrieval:
    """One episode of the retrieval environment, searching a shared index."""

    stop = (CLOSE,)

    def __init__(self, index: BM25, top_k: int, noise: float = 0.0, call_penalty: float = 0.0) -> None:
        self.index, self.top_k, self.noise, self.call_penalty = index, top_k, noise, call_penalty

    def reset(self, row: dict) -> None:
        self.question = str(row.get("prompt", ""))
        self.gold = str(row["answer"]).strip().lower()
        self.final: str | None = None
        self.turns = self.tool_calls = self.invalid_calls = 0
        self.hit = False

    def step(self, text: str) -> Turn:
        self.turns += 1
        text = without_eos(text).strip()
        if not text.endswith(CLOSE):
            self.final = text.lower()
            return Turn(None, done=True)
        self.tool_calls += 1
        start = text.rfind(OPEN)
        query = text[start + 1 : -1] if start >= 0 else ""
        if not words(query):
            self.invalid_calls += 1
            return Turn(observation_text(None), done=False, tool_call=True, invalid=True, reward=-self.call_penalty)
        found = [i for i, _ in self.index.search(query, self.top_k)]
        if self.noise:
            draw = random.Random(hashlib.sha256(f"{self.question}\0{query}\0{self.tool_calls}".encode()).digest())
            if draw.random() < self.noise:
                found = draw.sample(range(len(self.index.documents)), min(self.top_k, len(self.index.documents)))
        observation = observation_text([self.index.documents[i] for i in found])
        self.hit = self.hit or self.gold in words(observation)
        return Turn(observation, done=False, tool_call=True, reward=-self.call_penalty)

    def reward(self) -> float:
        return float(self.final == self.gold)

    def stats(self) -> dict[str, float]:
        return {"success": self.reward(), "tool_calls": self.tool_calls, "invalid_calls": self.invalid_calls,
                "turns": self.turns, "hit": float(self.hit)}  # fmt: skip


def _check(top_k: int = 1, k1: float = 1.2, b: float = 0.75, noise: float = 0.0, call_penalty: float = 0.0) -> None:
    if not 0 <= noise <= 1:
        raise ValueError(f"noise: a share of calls in [0, 1], got {noise}")
    if not 0 <= call_penalty <= 1:
        raise ValueError(f"call_penalty: in [0, 1] per call, got {call_penalty}")
    if not 1 <= top_k <= 20:
        raise ValueError(f"top_k: in 1..20 documents per call, got {top_k}")
    if k1 < 0:
        raise ValueError(f"k1: at least 0, got {k1}")
    if not 0 <= b <= 1:
        raise ValueError(f"b: in [0, 1], got {b}")


def open_corpus(corpus: str | Path, k1: float, b: float) -> BM25:
    """A corpus file (JSONL) indexed here, in memory; or a built index (a folder, harness/corpora.py) opened
    memory-mapped."""
    if Path(corpus).is_dir():
        from harness.environments.corpus_index import open_index

        return open_index(Path(corpus), k1, b)
    return BM25(read_corpus(corpus), k1, b)


@register_environment("retrieval", needs_labels=True, reads_corpus=True, validate=_check)
def retrieval(corpus: str, top_k: int = 1, k1: float = 1.2, b: float = 0.75, noise: float = 0.0,
              call_penalty: float = 0.0) -> partial[Retrieval]:  # fmt: skip
    """Episodes with a search tool over the documents of `corpus` (a JSONL file's path, or an index's folder),
    scored by the final answer against the row's `answer`; the corpus is opened once, here."""
    _check(top_k, k1, b, noise, call_penalty)
    return partial(Retrieval, open_corpus(corpus, k1, b), top_k, noise, call_penalty)
