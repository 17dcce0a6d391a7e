"""Questions about invented entities, answered from memory or by searching their documents: the toy world of the
`retrieval` environment.

Each of `entities` invented names (syllables, unique) has a color, a city and an animal, and one document:

    zorba color red city oslo animal yak

The corpus (`extra_files`: `corpus.jsonl` beside the splits, {"id": the name, "text": the document}) holds every
entity. A question asks one attribute, the answer is its value; the solution is either the value alone or a
demonstration of the tool (harness/environments/retrieval.py with top_k 1, its default: the call, the environment's
observation, the final answer, in exactly that environment's format):

    color of zorba?   ->   red                                              (direct)
    color of zorba?   ->   [zorba color]=zorba color red city oslo animal yak;red   (the tool, a share `tool_share`)

Entities are split, not questions: test, train and pool each ask about entities of their own, and pretrain only
about the rest, so no fact of a held-out question is ever shown in pre-training (answered without the tool, it is a
guess among the attribute's values). Pretrain rows cycle through their entities' questions, reshuffled each pass,
so they repeat. Rows are `{"id", "prompt", "answer", "solution"}`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from harness.environments.retrieval import NO_HITS, Retrieval, call_text, observation_text

ENVIRONMENT = "retrieval"
STOPS = Retrieval.stop
ATTRIBUTES = {
    "color": ("red", "blue", "green", "black", "white", "gray", "pink", "brown", "gold", "teal"),
    "city": ("oslo", "lima", "rome", "riga", "baku", "doha", "suva", "bern", "kyiv", "quito"),
    "animal": ("yak", "cat", "dog", "owl", "fox", "bee", "eel", "ant", "elk", "emu"),
}
ONSETS, VOWELS, CODAS = "bdfgklmnprstvz", "aeiou", ("", "", "n", "r", "k", "s")
RESERVED = {v for values in ATTRIBUTES.values() for v in values} | set(ATTRIBUTES) | {"of", NO_HITS}
"""Words a name must not be: it would match other documents, or read as the environment's answer."""


@dataclass
class RetrievalSpec:
    """`entities` invented entities with three attributes each, and questions about them."""

    entities: int = 300
    tool_share: float = 0.2
    """Fraction of rows whose solution demonstrates the search tool rather than answering directly."""
    n_train: int = 300
    n_pool: int = 150
    n_test: int = 150
    n_pretrain: int = 6000
    readers: int = 0
    """Entities (of `entities`) pre-training asks about only with the tool (0: none, every pretrain entity answers
    both ways). A reader's facts are shown only in the documents its searches return, so the demonstrations teach
    reading the answer off the document, not recalling it; with readers, the pretrain rows that search ask about them
    and those that answer directly about the remaining entities."""
    seed: int = 0


def names(rng: random.Random, n: int) -> list[str]:
    """n distinct invented names of 2-3 syllables, none a word of RESERVED.

    >>> names(random.Random(0), 3)
    ['vobipor', 'nirepen', 'varik']
    """
    out: list[str] = []
    taken = set(RESERVED)
    while len(out) < n:
        syllables = (rng.choice(ONSETS) + rng.choice(VOWELS) for _ in range(rng.randint(2, 3)))
        name = "".join(syllables) + rng.choice(CODAS)
        if name not in taken:
            taken.add(name)
            out.append(name)
    return out


def entities(spec: RetrievalSpec) -> list[tuple[str, dict[str, str]]]:
    """(name, {attribute: value}) of every entity, deterministic under `spec.seed`."""
    rng = random.Random(f"entities-{spec.seed}")
    return [(name, {a: rng.choice(values) for a, values in ATTRIBUTES.items()}) for name in names(rng, spec.entities)]


def document(name: str, facts: dict[str, str]) -> str:
    """An entity's document: its name, then each attribute and its value.

    >>> document("zorba", {"color": "red", "city": "oslo", "animal": "yak"})
    'zorba color red city oslo animal yak'
    """
    return " ".join([name, *(f"{a} {v}" for a, v in facts.items())])


def solution(name: str, facts: dict[str, str], attribute: str, tool: bool) -> str:
    """What follows the question: the value, or the search, its answer and the value.

    >>> solution("zorba", {"color": "red", "city": "oslo"}, "city", tool=True)
    '[zorba city]=zorba color red city oslo;oslo'
    """
    demonstration = call_text(f"{name} {attribute}") + observation_text([document(name, facts)]) if tool else ""
    return demonstration + facts[attribute]


def check_spec(spec: RetrievalSpec) -> None:
    if not 10 <= spec.entities <= 10_000:
        raise ValueError(f"retrieval.entities: in 10..10000, got {spec.entities}")
    if not 0.0 <= spec.tool_share <= 1.0:
        raise ValueError(f"retrieval.tool_share: a fraction in [0, 1], got {spec.tool_share}")
    if spec.readers < 0:
        raise ValueError(f"retrieval.readers: a number of entities, at least 0, got {spec.readers}")
    held_out = sum(_entities_for(n) for n in (spec.n_test, spec.n_train, spec.n_pool)) + spec.readers
    if held_out >= spec.entities:
        raise ValueError(f"retrieval: test, train and pool ask about {held_out - spec.readers} entities "
                         f"({len(ATTRIBUTES)} questions each) and {spec.readers} are readers, leaving none of the "
                         f"{spec.entities} to answer directly in pretrain")  # fmt: skip


def _entities_for(questions: int) -> int:
    return -(-questions // len(ATTRIBUTES))


def make_splits(spec: RetrievalSpec) -> dict[str, list[dict]]:
    """Splits on disjoint entities (so no question in two of them), deterministic under `spec.seed`."""
    check_spec(spec)
    world = entities(spec)
    rng, style = random.Random(spec.seed), random.Random(f"style-{spec.seed}")
    order = list(range(len(world)))
    rng.shuffle(order)
    asked, used = {}, 0
    for name, size in (("test", spec.n_test), ("train", spec.n_train), ("pool", spec.n_pool)):
        questions = [(e, a) for e in order[used : used + _entities_for(size)] for a in ATTRIBUTES]
        rng.shuffle(questions)
        asked[name], used = questions[:size], used + _entities_for(size)
    readers = [(e, a) for e in order[used : used + spec.readers] for a in ATTRIBUTES]
    rest = [(e, a) for e in order[used + spec.readers :] for a in ATTRIBUTES]
    rows = {name: [_row(i, *world[e], a, style.random() < spec.tool_share) for i, (e, a) in enumerate(questions)]
            for name, questions in asked.items()}  # fmt: skip
    if not readers:
        pretrain = _cycled(rng, rest, spec.n_pretrain)
        rows["pretrain"] = [
            _row(i, *world[e], a, style.random() < spec.tool_share) for i, (e, a) in enumerate(pretrain)
        ]
        return rows
    tools = [style.random() < spec.tool_share for _ in range(spec.n_pretrain)]
    searched, direct = iter(_cycled(rng, readers, sum(tools))), iter(_cycled(rng, rest, len(tools) - sum(tools)))
    rows["pretrain"] = [_row(i, *world[e], a, tool) for i, tool in enumerate(tools)
                        for e, a in [next(searched) if tool else next(direct)]]  # fmt: skip
    return rows


def _cycled(rng: random.Random, questions: list, n: int) -> list:
    """n questions: passes over `questions`, each pass reshuffled."""
    out: list = []
    while len(out) < n:
        rng.shuffle(questions)
        out += questions[: n - len(out)]
    return out


def _row(i: int, name: str, facts: dict[str, str], attribute: str, tool: bool) -> dict:
    return {"id": i, "prompt": f"{attribute} of {name}?", "answer": facts[attribute],
            "solution": solution(name, facts, attribute, tool)}  # fmt: skip


def extra_files(spec: RetrievalSpec) -> dict[str, list[dict]]:
    """The corpus the environment searches: one document per entity."""
    return {"corpus": [{"id": name, "text": document(name, facts)} for name, facts in entities(spec)]}


def tokenizer_text(row: dict) -> str:
    """What the dataset's tokenizer learns from a pretrain row (the question and its solution)."""
    return row["prompt"] + row["solution"]
