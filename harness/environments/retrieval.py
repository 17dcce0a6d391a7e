"""A search tool: the model writes a query between call tags, the environment answers with the documents that match
it best (BM25, harness/environments/bm25.py) from a corpus.

An episode on the prompt `color of zorba?` in the toy protocol (the toy world harness/world/retrieval.py writes its
demonstrations with `call_text` and `observation_text`, so they match this environment exactly):

    model:        [zorba color]                             a call: `[QUERY WORDS]` ending the turn ("]" is the stop
                                                            string)
    environment:  =zorba color red city oslo animal yak;    `=TEXT;`: the top_k documents' texts joined by " | ";
                                                            `=none;` when no document shares a word with the query,
                                                            `=?;` for a call without query words
    model:        red                                       a turn without a call is the final answer: its text, a word

A paper scale speaks its paper's protocol instead, set by the arguments `call`, `result` and `answer` (each a pair
of opening and closing text) and `separator`; Search-R1's and ZeroSearch's is

    call: ["<search>", "</search>"], result: ["\n\n<information>", "</information>\n\n"], answer: ["<answer>", "</answer>"]

where a turn without a call ends the episode and its final answer is the text inside its last answer tags (none
without them). The corpus is a JSONL file of {"id", "text"}, read and indexed once per factory call, or at paper
scale the folder of its index built on the head node (harness/corpora.py), opened memory-mapped; in the toy protocol
its texts should hold no ";" (the end of an observation).

The row's `answer` is one gold answer, or several as a JSON list (a dataset's list column: NQ's golden answers).
`match` says how the final answer is graded against them: `exact` (equal, case aside), `em` (equal after SQuAD's
normalisation: lowercase, no punctuation, no articles, single spaces) or `f1` (the best token F1 over the golds, a
reward between 0 and 1; the episode succeeds on an `em` match). The episode's reward is that grade (0 without a final
answer before the turn limit), minus `call_penalty` per call (a per-turn reward: a cost of searching). `noise`: the
share of calls answered with documents drawn at random instead of the search's best (a degraded engine, as a
simulated search engine is; drawn from a hash of the question, the query and the call's number, so a rerun answers
alike). With `noise_end`, the share follows training (ZeroSearch's curriculum): at progress p (the share of the
stage's steps done) it is noise + (base^p - 1) / (base - 1) * (noise_end - noise), `noise_base` the base (1: a
straight line); an evaluation, which reports no progress, uses `noise`.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import string
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from harness.environments import Turn, register_environment, without_eos
from harness.environments.bm25 import BM25, words

NO_HITS = "none"
MATCHES = ("exact", "em", "f1")
PUNCTUATION = frozenset(string.punctuation)


@dataclass(frozen=True)
class Protocol:
    """How calls, observations and final answers are written."""

    call: tuple[str, str] = ("[", "]")
    result: tuple[str, str] = ("=", ";")
    answer: tuple[str, str] | None = None
    """None: a turn without a call is the answer, all of it."""
    separator: str = " | "


TOY = Protocol()


def call_text(query: str, protocol: Protocol = TOY) -> str:
    """A call as the model writes it.

    >>> call_text("zorba color"), call_text("zorba", Protocol(call=("<search>", "</search>")))
    ('[zorba color]', '<search>zorba</search>')
    """
    return f"{protocol.call[0]}{query}{protocol.call[1]}"


def observation_text(documents: list[str] | None, protocol: Protocol = TOY) -> str:
    """The environment's answer to a call: the documents' texts, `none` when there are none, `?` for an invalid
    call (None).

    >>> observation_text(["zorba color red", "kela color blue"]), observation_text([]), observation_text(None)
    ('=zorba color red | kela color blue;', '=none;', '=?;')
    """
    body = "?" if documents is None else protocol.separator.join(documents) or NO_HITS
    return f"{protocol.result[0]}{body}{protocol.result[1]}"


def normalized(text: str) -> str:
    """SQuAD's answer normalisation: lowercase, punctuation and the articles a/an/the removed, single spaces.

    >>> normalized("The  Eiffel-Tower!")
    'eiffeltower'
    """
    text = "".join(c for c in text.lower() if c not in PUNCTUATION)
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def token_f1(prediction: str, gold: str) -> float:
    """Token F1 of two normalised answers.

    >>> token_f1("the red fox", "red wolf")
    0.5
    """
    p, g = normalized(prediction).split(), normalized(gold).split()
    same = sum((Counter(p) & Counter(g)).values())
    return 0.0 if not same else 2 * same / (len(p) + len(g))


def golds(answer) -> list[str]:
    """The gold answers of a row's `answer`: a list, a JSON list's text, or one answer.

    >>> golds('["Paris", "paris city"]'), golds("red"), golds(["a"])
    (['Paris', 'paris city'], ['red'], ['a'])
    """
    if isinstance(answer, (list, tuple)):
        return [str(a) for a in answer]
    text = str(answer)
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            return [str(a) for a in parsed]
    return [text]


def answer_in(text: str, protocol: Protocol = TOY) -> str | None:
    """The final answer in a turn without a call: all of it, or what its last answer tags hold (None: none).

    >>> answer_in("red"), answer_in("so <answer> Paris </answer>", Protocol(answer=("<answer>", "</answer>")))
    ('red', 'Paris')
    """
    if protocol.answer is None:
        return text
    opening, closing = protocol.answer
    start = text.rfind(opening)
    end = text.find(closing, start + len(opening)) if start >= 0 else -1
    return text[start + len(opening) : end].strip() if end >= 0 else None


def written_answer(text: str, protocol: Protocol = TOY) -> str | None:
    """The final answer of one completion that writes its calls' results itself (no environment answered them):
    what follows its last result, read as the environment reads a turn without a call.

    >>> written_answer("[zorba color]=zorba color red;red"), written_answer("blue")
    ('red', 'blue')
    """
    closing = protocol.result[1]
    cut = text.rfind(closing)
    return answer_in(text[cut + len(closing) :] if cut >= 0 else text, protocol)


def grade(final: str, answers: list[str], match: str) -> float:
    if match == "exact":
        return float(final.strip().lower() in {a.strip().lower() for a in answers})
    if match == "em":
        return float(normalized(final) in {normalized(a) for a in answers})
    return max((token_f1(final, a) for a in answers), default=0.0)


def read_corpus(path: str | Path) -> list[str]:
    """The texts of a corpus file (JSONL of {"id", "text"}), in file order."""
    with open(path) as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


class Retrieval:
    """One episode of the retrieval environment, searching a shared index."""

    stop = (TOY.call[1],)
    """The toy protocol's stop string; an episode's own is `self.stop` (its protocol's closing call tag)."""

    def __init__(self, index: BM25, top_k: int, noise: float = 0.0, call_penalty: float = 0.0,
                 protocol: Protocol = TOY, match: str = "exact", noise_end: float | None = None,
                 noise_base: float = 4.0) -> None:  # fmt: skip
        self.index, self.top_k, self.noise, self.call_penalty = index, top_k, noise, call_penalty
        self.protocol, self.match, self.stop = protocol, match, (protocol.call[1],)
        self.noise_start, self.noise_end, self.noise_base = noise, noise_end, noise_base

    def at_progress(self, p: float) -> None:
        """Set the share of noisy answers for training progress p (see the module's doc); nothing without a
        schedule."""
        self.noise = scheduled(self.noise_start, self.noise_end, self.noise_base, p)

    def reset(self, row: dict) -> None:
        self.question = str(row.get("prompt", ""))
        self.golds = golds(row["answer"])
        self.final: str | None = None
        self.turns = self.tool_calls = self.invalid_calls = 0
        self.hit = False

    def step(self, text: str) -> Turn:
        self.turns += 1
        text = without_eos(text).strip()
        (open_call, close_call), p = self.protocol.call, self.protocol
        if not text.endswith(close_call):
            self.final = self._answer(text)
            return Turn(None, done=True)
        self.tool_calls += 1
        start = text.rfind(open_call, 0, len(text) - len(close_call))
        query = text[start + len(open_call) : -len(close_call)] if start >= 0 else ""
        if not words(query):
            self.invalid_calls += 1
            return Turn(observation_text(None, p), done=False, tool_call=True, invalid=True, reward=-self.call_penalty)
        found = [i for i, _ in self.index.search(query, self.top_k)]
        if self.noise:
            draw = random.Random(hashlib.sha256(f"{self.question}\0{query}\0{self.tool_calls}".encode()).digest())
            if draw.random() < self.noise:
                found = draw.sample(range(len(self.index.documents)), min(self.top_k, len(self.index.documents)))
        documents = [self.index.documents[i] for i in found]
        shown = f" {' '.join(map(normalized, documents))} "  # a gold answer shown: its words in a document
        self.hit = self.hit or any(f" {normalized(g)} " in shown for g in self.golds if normalized(g))
        return Turn(observation_text(documents, p), done=False, tool_call=True, reward=-self.call_penalty)

    def _answer(self, text: str) -> str | None:
        return answer_in(text, self.protocol)

    def reward(self) -> float:
        return 0.0 if self.final is None else grade(self.final, self.golds, self.match)

    def stats(self) -> dict[str, float]:
        success = (
            0.0 if self.final is None else grade(self.final, self.golds, "em" if self.match == "f1" else self.match)
        )
        return {"success": success, "tool_calls": self.tool_calls, "invalid_calls": self.invalid_calls,
                "turns": self.turns, "hit": float(self.hit)} | ({"noise": self.noise} if self.noise_end is not None
                                                                else {})  # fmt: skip


def scheduled(start: float, end: float | None, base: float, p: float) -> float:
    """A value moving from `start` to `end` as training progresses (p from 0 to 1), exponentially with `base`.

    >>> [round(scheduled(0.0, 0.5, 4.0, p), 4) for p in (0, 0.5, 1)], scheduled(0.2, None, 4.0, 0.7)
    ([0.0, 0.1667, 0.5], 0.2)
    >>> scheduled(0.0, 1.0, 1.0, 0.25)
    0.25
    """
    if end is None:
        return start
    shape = p if base == 1 else (base**p - 1) / (base - 1)
    return start + shape * (end - start)


def check_tags(**pairs: list[str] | None) -> None:
    """Each given tag pair (None: the toy protocol's) is [opening, closing], two non-empty texts; else ValueError."""
    for name, pair in pairs.items():
        if pair is not None and (len(pair) != 2 or not all(isinstance(t, str) and t for t in pair)):
            raise ValueError(f"{name}: [opening, closing], two non-empty texts, got {pair!r}")


def _check(top_k: int = 1, k1: float = 1.2, b: float = 0.75, noise: float = 0.0, call_penalty: float = 0.0,
           call: list[str] | None = None, result: list[str] | None = None, answer: list[str] | None = None,
           separator: str = TOY.separator, match: str = "exact", noise_end: float | None = None,
           noise_base: float = 4.0) -> None:  # fmt: skip
    if not 0 <= noise <= 1:
        raise ValueError(f"noise: a share of calls in [0, 1], got {noise}")
    if noise_end is not None and not 0 <= noise_end <= 1:
        raise ValueError(f"noise_end: a share of calls in [0, 1], got {noise_end}")
    if noise_base <= 0:
        raise ValueError(f"noise_base: positive (1: a straight line), got {noise_base}")
    if not 0 <= call_penalty <= 1:
        raise ValueError(f"call_penalty: in [0, 1] per call, got {call_penalty}")
    if not 1 <= top_k <= 20:
        raise ValueError(f"top_k: in 1..20 documents per call, got {top_k}")
    if k1 < 0:
        raise ValueError(f"k1: at least 0, got {k1}")
    if not 0 <= b <= 1:
        raise ValueError(f"b: in [0, 1], got {b}")
    if match not in MATCHES:
        raise ValueError(f"match: one of {', '.join(MATCHES)}, got {match!r}")
    check_tags(call=call, result=result, answer=answer)
    if call is not None and not call[1].strip():
        raise ValueError(f"call: the closing tag ends the model's turn (a stop string): {call[1]!r} is blank")


def protocol_of(call: list[str] | None, result: list[str] | None, answer: list[str] | None,
                separator: str) -> Protocol:  # fmt: skip
    return Protocol(tuple(call or TOY.call), tuple(result or TOY.result), tuple(answer) if answer else None, separator)


def open_corpus(corpus: str | Path, k1: float, b: float) -> BM25:
    """A corpus file (JSONL) indexed here, in memory; or a built index (a folder, harness/corpora.py) opened
    memory-mapped."""
    if Path(corpus).is_dir():
        from harness.environments.corpus_index import open_index

        return open_index(Path(corpus), k1, b)
    return BM25(read_corpus(corpus), k1, b)


@register_environment("retrieval", needs_labels=True, reads_corpus=True, validate=_check)
def retrieval(corpus: str, top_k: int = 1, k1: float = 1.2, b: float = 0.75, noise: float = 0.0,
              call_penalty: float = 0.0, call: list[str] | None = None, result: list[str] | None = None,
              answer: list[str] | None = None, separator: str = TOY.separator, match: str = "exact",
              noise_end: float | None = None, noise_base: float = 4.0) -> partial[Retrieval]:  # fmt: skip
    """Episodes with a search tool over the documents of `corpus` (a JSONL file's path, or an index's folder),
    scored by the final answer against the row's `answer`; the corpus is opened once, here."""
    _check(top_k, k1, b, noise, call_penalty, call, result, answer, separator, match, noise_end, noise_base)
    return partial(Retrieval, open_corpus(corpus, k1, b), top_k, noise, call_penalty,
                   protocol_of(call, result, answer, separator), match, noise_end, noise_base)  # fmt: skip
