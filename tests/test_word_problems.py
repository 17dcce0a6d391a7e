"""Generated GSM8K-style word problems: the stories mean what their answers say, splits are disjoint and
reproducible, the difficulty knobs hold, bad specs are refused naming the file and key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.config.checks import check_dataset
from harness.config.components import DatasetConfig
from harness.config.errors import ConfigError
from harness.grader import extract_answer, is_correct
from harness.world import word_problems as wp
from harness.world.word_problems import WordProblemSpec

SPEC = WordProblemSpec(min_steps=1, max_steps=3, max_value=15, max_factor=4, max_result=60,
                       operators=["+", "-", "*", "/"], n_train=150, n_pool=150, n_test=100, n_pretrain=50)  # fmt: skip


def replay(prompt: str) -> tuple[int, int]:
    """Read a story back independently of the generator: (final amount, number of steps)."""
    sentences = re.findall(r"[^.?]+[.?]", prompt)
    value, steps = int(re.search(r"has (\d+)", sentences[0]).group(1)), 0
    for s in sentences[1:-1]:
        n = int(re.search(r"(\d+)", s).group(1))
        steps += 1
        if "times as many" in s:
            value *= n
        elif "equal piles" in s:
            assert value % n == 0, s
            value //= n
        elif re.search(r"(buys|finds) \d+ more|gives \w+ \d+ more", s):
            value += n
        else:
            assert re.search(r"(gives|loses|uses) \d+", s), s
            value -= n
        assert value >= 0, prompt
    return value, steps


def test_answers_are_what_the_stories_say():
    splits = wp.make_splits(SPEC)
    for rows in splits.values():
        for r in rows:
            value, steps = replay(r["prompt"])
            assert str(value) == r["answer"], r
            assert SPEC.min_steps <= steps <= SPEC.max_steps
            assert r["prompt"].endswith("have now?")


def test_worked_solutions_end_in_the_answer_and_grade_correct():
    for r in wp.make_splits(SPEC)["train"]:
        assert r["solution"].endswith(f"The answer is {r['answer']}.")
        assert extract_answer(r["solution"]) == r["answer"]
        assert is_correct(r["solution"], r["answer"])
        for a, op, b, c in re.findall(r"(\d+) ([-+x/]) (\d+) = (\d+)\.", r["solution"]):  # every line is true
            a, b, c = int(a), int(b), int(c)
            assert {"+": a + b, "-": a - b, "x": a * b, "/": a // b}[op] == c


def test_splits_are_disjoint_sized_and_reproducible():
    a, b = wp.make_splits(SPEC), wp.make_splits(SPEC)
    assert a == b
    assert {k: len(v) for k, v in a.items()} == {"test": 100, "train": 150, "pool": 150, "pretrain": 50}
    prompts = [r["prompt"] for rows in a.values() for r in rows]
    assert len(prompts) == len(set(prompts))
    other = wp.make_splits(WordProblemSpec(**(vars(SPEC) | {"seed": 1})))
    assert other["test"] != a["test"]


def test_knobs_bound_the_problems():
    spec = WordProblemSpec(min_steps=2, max_steps=2, max_value=9, operators=["+"], n_train=30, n_pool=0,
                           n_test=10, n_pretrain=0)  # fmt: skip
    for r in wp.make_splits(spec)["train"]:
        value, steps = replay(r["prompt"])
        assert steps == 2
        assert not re.search(r"gives \d+ \w+ to|loses|uses|times|piles", r["prompt"])
        assert all(int(n) <= 9 for n in re.findall(r"\d+", r["prompt"]))
        assert int(r["answer"]) <= 27
    products = WordProblemSpec(operators=["*"], max_value=10, max_factor=3, max_result=30, max_steps=3,
                               n_train=40, n_pool=0, n_test=0, n_pretrain=0)  # fmt: skip
    assert all(int(r["answer"]) <= 30 for r in wp.make_splits(products)["train"])


@pytest.mark.parametrize(
    "change, says",
    [
        ({"operators": ["^"]}, "operators"),
        ({"operators": []}, "operators"),
        ({"min_steps": 3, "max_steps": 2}, "min_steps <= max_steps"),
        ({"max_factor": 1}, "max_factor >= 2"),
    ],
)
def test_bad_specs_are_refused_with_the_file_and_key(change, says):
    cfg = DatasetConfig(source="toy-word-problems", word_problems=WordProblemSpec(**change))
    with pytest.raises(ConfigError, match=rf"configs/datasets/x.yaml: word_problems: .*{re.escape(says)}"):
        check_dataset(cfg, Path("configs/datasets/x.yaml"))


def test_unknown_source_and_too_many_problems_are_refused(monkeypatch):
    with pytest.raises(ConfigError, match="source: unknown source 'toy-words'"):
        check_dataset(DatasetConfig(source="toy-words"), Path("x.yaml"))
    monkeypatch.setattr(wp, "NAMES", ("Ann", "Bo"))
    monkeypatch.setattr(wp, "THINGS", ("figs",))  # 2 x 3 wordings of "2 - 1": 6 distinct problems
    tiny = WordProblemSpec(max_value=2, max_steps=1, operators=["-"], n_test=50, n_train=0, n_pool=0, n_pretrain=0)
    with pytest.raises(ValueError, match="could not draw 50 distinct test problems"):
        wp.make_splits(tiny)
