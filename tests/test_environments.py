"""Multi-turn tool environments (harness/environments/) and their toy worlds (harness/world/calculator.py,
harness/world/retrieval.py): BM25 against hand-computed scores, the calculator's and the search tool's protocols,
and every tool demonstration of the worlds replayed through its environment, turn by turn."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import pytest

from harness.environments import ENVIRONMENTS
from harness.environments.bm25 import BM25, words
from harness.environments.calculator import Calculator
from harness.environments.retrieval import Retrieval
from harness.world import calculator as calculator_world
from harness.world import retrieval as retrieval_world
from harness.world.generators import GENERATORS
from harness.world.splits import write_rows

# ----------------------------------------------------------------------------- BM25


def ranked(index: BM25, query: str, k: int) -> tuple[list[int], list[float]]:
    hits = index.search(query, k)
    return [i for i, _ in hits], [score for _, score in hits]


def test_bm25_scores_match_the_formula_by_hand():
    index = BM25(["the cat sat", "the dog sat on the mat", "cat cat dog"])
    # N = 3, lengths 3, 6, 3: avgdl = 4. "cat" is in 2 documents, "mat" in 1; k1 + 1 = 2.2
    idf2, idf1 = math.log((3 - 2 + 0.5) / (2 + 0.5) + 1), math.log((3 - 1 + 0.5) / (1 + 0.5) + 1)
    short, long = 1.2 * (0.25 + 0.75 * 3 / 4), 1.2 * (0.25 + 0.75 * 6 / 4)  # k1 (1 - b + b |D| / avgdl)
    cat0, cat2, mat1 = idf2 * 1 * 2.2 / (1 + short), idf2 * 2 * 2.2 / (2 + short), idf1 * 1 * 2.2 / (1 + long)
    assert (round(mat1, 4), round(cat2, 4), round(cat0, 4)) == (0.8143, 0.6951, 0.5235)
    docs, scores = ranked(index, "cat", k=3)
    assert docs == [2, 0] and scores == pytest.approx([cat2, cat0])  # document 1 scores 0: left out
    docs, scores = ranked(index, "Mat, cat? cat!", k=3)  # a repeated query word counts once
    assert docs == [1, 2, 0] and scores == pytest.approx([mat1, cat2, cat0])
    assert ranked(index, "cat mat", k=1) == ([1], pytest.approx([mat1]))
    assert index.search("zebra", k=3) == [] and index.search("", k=3) == []


def test_bm25_breaks_ties_by_the_lower_index():
    assert [i for i, _ in BM25(["b a", "x y", "a b", "a b"]).search("a", k=3)] == [0, 2, 3]


# ----------------------------------------------------------------------------- calculator


def calculator_env(answer="180", **args):
    env = ENVIRONMENTS.get("calculator").build(**args)()
    env.reset({"answer": answer})
    return env


def test_calculator_answers_a_call_then_scores_the_final_answer():
    env = calculator_env()
    assert env.stop == (">",)
    turn = env.step("let me add <12+34+56+78>")
    assert (turn.observation, turn.done, turn.tool_call, turn.invalid, turn.reward) == ("=180;", False, True, False, 0)
    assert env.step("so (2*(3-5)) is not it; the sum is 180").done
    assert env.reward() == 1.0
    assert env.stats() == {"success": 1.0, "tool_calls": 1, "invalid_calls": 0, "turns": 2}


@pytest.mark.parametrize("call", ["<12+a>", "<__import__('os')>", "<" + "1+" * 25 + "1>", "<999999*999999*9>",
                                  "<9999999999999>", "<2**99>", "<1 + 2>", "<1+>", "12+34>", "<>"])  # fmt: skip
def test_calculator_refuses_a_malformed_call(call):
    env = calculator_env(invalid_penalty=0.5)
    turn = env.step(call)
    assert (turn.observation, turn.done, turn.tool_call, turn.invalid, turn.reward) == ("=?;", False, True, True, -0.5)
    assert env.stats()["invalid_calls"] == 1


def test_calculator_expression_length_limit():
    call = "<" + "+".join(["10"] * 14) + ">"  # 41 characters
    assert calculator_env(max_expression_chars=41).step(call).observation == "=140;"
    assert calculator_env().step(call).invalid


@pytest.mark.parametrize(("final", "reward"), [("180", 1.0), ("it is 179", 0.0), ("180<eos>", 1.0), ("none", 0.0),
                                               ("-180", 0.0), ("3 or 180", 1.0)])  # fmt: skip
def test_calculator_final_answer_is_the_last_integer(final, reward):
    env = calculator_env()
    assert env.step(final).done and env.reward() == reward and env.stats()["success"] == reward


def test_calculator_without_a_final_answer_scores_zero():
    env = calculator_env()
    env.step("<1+2>")
    env.step("<3+4>")  # the turn limit came before an answer
    assert env.reward() == 0.0 and env.stats() == {"success": 0.0, "tool_calls": 2, "invalid_calls": 0, "turns": 2}


# ----------------------------------------------------------------------------- retrieval


SPEC = retrieval_world.RetrievalSpec(entities=120, n_test=60, n_train=60, n_pool=30, n_pretrain=600, tool_share=0.3)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("retrieval")
    write_rows(GENERATORS.get("toy-retrieval").extra_files(SPEC), out)
    return out / "corpus.jsonl"


def retrieval_env(corpus, answer="red", **args):
    env = ENVIRONMENTS.get("retrieval").build(corpus=str(corpus), **args)()
    env.reset({"answer": answer})
    return env


def test_the_top_document_is_the_entity_of_every_test_question(corpus):
    rows = [json.loads(line) for line in corpus.read_text().splitlines()]
    assert len(rows) == SPEC.entities and len({r["id"] for r in rows}) == SPEC.entities
    index = BM25([r["text"] for r in rows])
    for row in retrieval_world.make_splits(SPEC)["test"]:
        attribute, _, name = row["prompt"].removesuffix("?").split()
        (best, _), *_ = index.search(f"{name} {attribute}", k=1)
        assert rows[best]["id"] == name and f"{attribute} {row['answer']}" in rows[best]["text"]


def test_retrieval_call_hit_and_success(corpus):
    name, facts = retrieval_world.entities(SPEC)[0]
    env = retrieval_env(corpus, answer=facts["color"].upper())
    assert env.stop == ("]",)
    turn = env.step(f"[{name} color]")
    assert (turn.observation, turn.done, turn.tool_call, turn.invalid) == (
        f"={retrieval_world.document(name, facts)};", False, True, False)  # fmt: skip
    assert env.step(f" {facts['color']}<eos>").done and env.reward() == 1.0
    assert env.stats() == {"success": 1.0, "tool_calls": 1, "invalid_calls": 0, "turns": 2, "hit": 1.0}


def test_retrieval_top_k_no_hits_and_misses(corpus):
    (first, facts), (second, other) = retrieval_world.entities(SPEC)[:2]
    env = retrieval_env(corpus, answer=facts["city"], top_k=2)
    documents = [retrieval_world.document(first, facts), retrieval_world.document(second, other)]
    assert env.step("[city]").observation == f"={documents[0]} | {documents[1]};"  # a tie: the first two documents
    assert env.step("[zzz]").observation == "=none;"
    assert env.step(f"{facts['city']} at last").done and env.reward() == 0.0
    assert env.stats() == {"success": 0.0, "tool_calls": 2, "invalid_calls": 0, "turns": 3, "hit": 1.0}


@pytest.mark.parametrize("call", ["[]", "[ ?! ]", "no opening]"])
def test_retrieval_refuses_an_empty_query(corpus, call):
    env = retrieval_env(corpus)
    turn = env.step(call)
    assert (turn.observation, turn.done, turn.tool_call, turn.invalid) == ("=?;", False, True, True)
    assert env.stats() == {"success": 0.0, "tool_calls": 1, "invalid_calls": 1, "turns": 1, "hit": 0.0}


def test_a_call_costs_call_penalty_and_noise_answers_with_random_documents(corpus):
    name, facts = retrieval_world.entities(SPEC)[0]
    right = f"={retrieval_world.document(name, facts)};"
    env = retrieval_env(corpus, answer=facts["color"], call_penalty=0.1)
    assert env.step(f"[{name} color]").reward == -0.1 and env.step("[]").reward == -0.1
    assert retrieval_env(corpus, answer=facts["color"], noise=0.0).step(f"[{name} color]").observation == right
    answers = []
    for i in range(40):  # every call of a fully noisy engine draws a document, deterministically per question
        env = retrieval_env(corpus, answer=facts["color"], noise=1.0)
        env.question = f"question {i}"
        answers.append(env.step(f"[{name} color]").observation)
        again = retrieval_env(corpus, answer=facts["color"], noise=1.0)
        again.question = f"question {i}"
        assert again.step(f"[{name} color]").observation == answers[-1]
    assert len(set(answers)) > 20 and answers.count(right) < 5
    assert ENVIRONMENTS.get("retrieval").args_problem({"noise": 1.5}) is not None


def test_a_noise_schedule_follows_training_and_an_evaluation_uses_its_start(corpus):
    """ZeroSearch's curriculum: noise + (4^p - 1) / 3 * (noise_end - noise) at training progress p."""
    name, facts = retrieval_world.entities(SPEC)[0]
    right = f"={retrieval_world.document(name, facts)};"
    noisy = []
    for p in (None, 0.0, 0.5, 1.0):
        answers = []
        for i in range(60):
            env = retrieval_env(corpus, answer=facts["color"], noise=0.0, noise_end=1.0)
            if p is not None:  # a training stage's rollout sets it; an evaluation never does
                env.at_progress(p)
            env.question = f"question {i}"
            answers.append(env.step(f"[{name} color]").observation)
        noisy.append(sum(a != right for a in answers) / len(answers))
        assert env.stats()["noise"] == pytest.approx(0.0 if p is None else (4**p - 1) / 3)
    assert noisy[0] == noisy[1] == 0.0 and 0.15 < noisy[2] < 0.55 and noisy[3] > 0.9
    assert "noise" not in retrieval_env(corpus, noise=0.3).stats()  # no schedule: nothing to log
    for bad in ({"noise_end": 2.0}, {"noise_base": 0.0}):
        assert ENVIRONMENTS.get("retrieval").args_problem(bad) is not None


def test_retrieval_reads_its_corpus_once_per_factory(corpus, monkeypatch):
    from harness.environments import retrieval

    reads = []
    read = retrieval.read_corpus
    monkeypatch.setattr(retrieval, "read_corpus", lambda path: reads.append(path) or read(path))
    make = ENVIRONMENTS.get("retrieval").build(corpus=str(corpus))
    assert make() is not make() and make().index is make().index and len(reads) == 1


def test_arguments_are_checked_at_config_time():
    retrieval, calculator = ENVIRONMENTS.get("retrieval"), ENVIRONMENTS.get("calculator")
    assert retrieval.args_problem({"top_k": 3}) is None  # `corpus` is the harness's
    assert retrieval.args_problem({"top_k": 0}) == ("", "top_k: in 1..20 documents per call, got 0")
    assert retrieval.args_problem({"b": 2.0})[1].startswith("b: in [0, 1]")
    assert retrieval.args_problem({"corpus": "x.jsonl"})[0] == "corpus"
    assert calculator.args_problem({"invalid_penalty": -1.0})[1].startswith("invalid_penalty: at least 0")
    assert calculator.args_problem({"max_expression_chars": "40"})[0] == "max_expression_chars"
    assert calculator.needs_labels and retrieval.needs_labels and retrieval.reads_corpus and not calculator.reads_corpus


# ----------------------------------------------------------------------------- the worlds

WORLDS = {
    "calculator": (calculator_world, calculator_world.CalculatorSpec(n_train=50, n_pool=50, n_test=50, n_pretrain=400)),
    "retrieval": (retrieval_world, SPEC),
}
STOPS = {"calculator": Calculator.stop, "retrieval": Retrieval.stop}


@pytest.mark.parametrize("world", WORLDS)
def test_splits_are_disjoint_and_deterministic(world):
    module, spec = WORLDS[world]
    splits = module.make_splits(spec)
    assert splits == module.make_splits(spec) and module.ENVIRONMENT == world
    assert [len(splits[s]) for s in ("test", "train", "pool", "pretrain")] == [
        spec.n_test, spec.n_train, spec.n_pool, spec.n_pretrain]  # fmt: skip
    prompts = [{r["prompt"] for r in rows} for rows in splits.values()]
    assert sum(map(len, prompts)) == len(set().union(*prompts))


def test_held_out_entities_never_appear_in_pretrain():
    splits = retrieval_world.make_splits(SPEC)
    entities = {name: {r["prompt"].removesuffix("?").split()[-1] for r in rows} for name, rows in splits.items()}
    assert sum(map(len, entities.values())) == len(set().union(*entities.values()))  # no entity in two splits
    pretrain_words = set(words(" ".join(r["prompt"] + r["solution"] for r in splits["pretrain"])))
    assert not pretrain_words & (entities["test"] | entities["train"] | entities["pool"])


def test_readers_are_asked_only_with_the_tool_and_their_facts_shown_only_in_documents(corpus):
    """With `readers`, pretrain's searching rows ask about the readers alone and its direct rows about the other
    pretrain entities alone, so a reader's answer can only be read off the document its search returns; the held-out
    splits are the same as without readers; every demonstration replays through the environment."""
    spec = dataclasses.replace(SPEC, readers=30, tool_share=0.5)
    splits, plain = retrieval_world.make_splits(spec), retrieval_world.make_splits(dataclasses.replace(spec, readers=0))
    assert all(splits[s] == plain[s] for s in ("test", "train", "pool"))
    name_of = {True: set(), False: set()}
    for row in splits["pretrain"]:
        name_of["]=" in row["solution"]].add(row["prompt"].removesuffix("?").split()[-1])
    assert len(name_of[True]) == 30 and name_of[False] and not name_of[True] & name_of[False]
    held_out = {r["prompt"].removesuffix("?").split()[-1] for s in ("test", "train", "pool") for r in splits[s]}
    assert not (name_of[True] | name_of[False]) & held_out
    make = ENVIRONMENTS.get("retrieval").build(corpus=str(corpus))
    searching = [row for row in splits["pretrain"] if "]=" in row["solution"]]
    assert [row for row in searching if not replay(make(), row)] == []
    with pytest.raises(ValueError, match="readers"):
        retrieval_world.make_splits(dataclasses.replace(SPEC, readers=SPEC.entities))


def replay(env, row: dict) -> bool:
    """Feed a solution's model turns to the environment; check each observation is the demonstration's text.
    Whether the solution used the tool."""
    env.reset(row)
    rest, used = row["solution"], False
    while (end := rest.find(env.stop[0])) >= 0:
        turn = env.step(rest[: end + 1])
        assert turn.tool_call and not turn.invalid and not turn.done
        assert rest[end + 1 :].startswith(turn.observation), (row, turn)
        rest, used = rest[end + 1 + len(turn.observation) :], True
    assert env.step(rest).done and env.reward() == 1.0, row
    return used


@pytest.mark.parametrize("world", WORLDS)
def test_every_pretrain_demonstration_replays_through_its_environment(world, corpus):
    module, spec = WORLDS[world]
    args = {"corpus": str(corpus)} if world == "retrieval" else {}
    make = ENVIRONMENTS.get(module.ENVIRONMENT).build(**args)
    rows = module.make_splits(spec)["pretrain"]
    used = sum(replay(make(), row) for row in rows)
    assert 0.1 * len(rows) < used < 0.5 * len(rows)  # tool_share 0.2 / 0.3: some, not all


def test_search_answer_grades_a_written_out_episode_as_the_environment_grades_it(corpus):
    """Self-search (SSRL): one completion holding its calls and their results, graded by its last answer. Every
    demonstration (direct or searching) scores 1 against its gold and 0 against another value; the paper protocol
    reads the last answer tags, with em/f1 over a JSON list of golds."""
    from harness.rewards import REWARDS

    toy = REWARDS.get("search_answer").build()
    rows = retrieval_world.make_splits(SPEC)["train"]
    assert any("]=" in r["solution"] for r in rows) and any("]=" not in r["solution"] for r in rows)
    assert toy([r["solution"] for r in rows], answer=[r["answer"] for r in rows]) == [1.0] * len(rows)
    wrong = ["emu" if r["answer"] != "emu" else "yak" for r in rows]
    assert toy([r["solution"] for r in rows], answer=wrong) == [0.0] * len(rows)
    tags = {"result": ["<information>", "</information>"], "answer": ["<answer>", "</answer>"]}
    text = "<search>capital</search><information><answer>Lyon</answer></information> so <answer>the Paris</answer>"
    golds = ['["Paris", "Paris, France"]']
    assert REWARDS.get("search_answer").build(**tags, match="em")([text], answer=golds) == [1.0]
    assert REWARDS.get("search_answer").build(**tags, match="f1")(["<answer>Paris France</answer>"], answer=["Paris"]) \
        == [pytest.approx(2 / 3)]  # fmt: skip
    assert REWARDS.get("search_answer").build(**tags)(["<answer>Paris"], answer=golds) == [0.0]  # never closed
    assert REWARDS.get("search_answer").args_problem({"match": "fuzzy"})[0] == ""


@pytest.mark.parametrize("world", WORLDS)
def test_no_token_spans_two_turns(world, tmp_path):
    """Pre-training tokenizes a solution whole, an episode turn by turn: with the environment's stop strings
    isolated, the tokens are the same (without, BPE learns `>=` and `]=`, which span a call and its answer)."""
    from transformers import AutoTokenizer

    from harness.world.tokenizer import train_tokenizer

    module, spec = WORLDS[world]
    stop = STOPS[world]
    rows = module.make_splits(spec)["pretrain"]
    train_tokenizer([module.tokenizer_text(r) for r in rows], tmp_path, isolated=stop)
    tok = AutoTokenizer.from_pretrained(tmp_path)

    def ids(text: str) -> list[int]:
        return tok(text, add_special_tokens=False)["input_ids"]

    turn_end = re.compile(f"(?<=[{re.escape(stop[0])};])")  # after a call, after an observation
    demonstrations = [r["solution"] for r in rows if stop[0] in r["solution"]]
    assert demonstrations and all(
        ids(s) == [i for turn in turn_end.split(s) for i in ids(turn)] for s in demonstrations
    )


def test_world_specs_are_checked():
    with pytest.raises(ValueError, match="more than the environment's 40"):
        calculator_world.check_spec(calculator_world.CalculatorSpec(max_operands=8, max_value=99999))
    with pytest.raises(ValueError, match="leaving none"):
        retrieval_world.check_spec(retrieval_world.RetrievalSpec(entities=100, n_test=300))
    assert GENERATORS.get("toy-calculator").extra_files(calculator_world.CalculatorSpec()) == {}
