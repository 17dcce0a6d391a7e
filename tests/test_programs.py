"""The toy program world and the code graders: splits, tests, equivalent forms, sandboxed grading of completions.

The grading tests need bubblewrap (installed by the fixture when we are root; else skipped with that reason)."""

from __future__ import annotations

import json

import pytest

from harness.config.components import DatasetConfig
from harness.config.plain import plain_dataset
from harness.grader import EXTRACTORS
from harness.world.programs import INPUTS, ProgramSpec, evaluate, make_splits, same_function
from tests.conftest import debian_package


@pytest.fixture(scope="module")
def splits():
    return make_splits(ProgramSpec(n_train=100, n_pool=50, n_test=50, n_pretrain=300))


def test_splits_are_disjoint_and_every_row_passes_its_own_tests(splits):
    prompts = [r["prompt"] for rows in splits.values() for r in rows]
    assert len(prompts) == len(set(prompts)) == 500
    for row in (r for rows in splits.values() for r in rows):
        f = row["answer"]
        assert row["tests"] == [f"assert f({x}) == {evaluate(f, x)}" for x in INPUTS]
        assert same_function(row["solution"], f), row  # the other written forms compute the same function
    forms = sum(r["solution"] != r["answer"] for r in splits["pretrain"])
    assert 0.3 < forms / len(splits["pretrain"]) < 0.7  # variant_share 0.5: a reference string is not the only answer


def test_the_safe_evaluator_runs_nothing():
    assert evaluate("(x+3)*2", 4) == 14 and evaluate("-x+1", 2) == -1
    for hostile in (
        "__import__('os').system('true')",
        "x**99999999",
        "[x]*2",
        "f(x)",
        "x.__class__",
        "9" * 20 + "*9" * 3,
    ):
        assert evaluate(hostile, 1) is None, hostile


@pytest.fixture(scope="module")
def bubblewrap():
    debian_package("bubblewrap", "/usr/bin/bwrap", "the sandboxed grading tests")


def test_python_expression_counts_any_equivalent_form_right(bubblewrap):
    grade = EXTRACTORS.get("python_expression")
    gold = "(x+3)*2"
    right = ["(x+3)*2", "2*(x+3)", "x*2+6", "6+x+x", " (3+x)*2 \nextra line"]
    wrong = ["x*2+3", "x+", "(x+3)*2+0*__import__('os').getpid()*0+1", "open('/etc/passwd').read()", ""]
    assert [grade.canonical(grade(c), gold) == gold for c in right] == [True] * len(right)
    assert [grade.canonical(grade(c), gold) == gold for c in wrong] == [False] * len(wrong)


def test_python_program_runs_the_benchmark_tests_and_an_early_exit_fails(bubblewrap):
    grade = EXTRACTORS.get("python_program")
    gold = json.dumps({"prefix": 'def add(a, b):\n    """Sum."""\n', "entry_point": "add",
                       "tests": "def check(f):\n    assert f(2, 3) == 5\n    assert f(-1, 1) == 0\n\ncheck(add)\n"})  # fmt: skip
    cases = {
        "    return a + b\n": True,  # a bare body after the prompt's signature
        "Here it is:\n```python\ndef add(a, b):\n    return b + a\n```\n": True,
        "    return a * b\n": False,
        "    raise SystemExit(0)\n": False,
        "import os\nos._exit(0)\n": False,
        "```python\ndef add(a, b):\n    while True:\n        pass\n```": False,
    }
    assert {c: grade.canonical(grade(c), grade.gold(gold)) == grade.gold(gold) for c in cases} == cases


def test_mbpp_and_humaneval_hooks_score_samples_in_the_sandbox(bubblewrap):
    from harness.evaluation.tasks import hub_code

    doc = {"text": "Add two numbers.", "test_list": ["assert add(1, 2) == 3", "assert add(0, 0) == 0"],
           "test_setup_code": ""}  # fmt: skip
    responses = ["```python\ndef add(a, b):\n    return a + b\n```", "def add(a, b): return a - b",
                 "```python\ndef add(a, b):\n    return a + b\n```"]  # fmt: skip
    assert hub_code.process_mbpp(doc, [responses]) == {"pass@1": 2 / 3, "maj@n": 1.0}
    he = {"prompt": "def inc(x):\n", "test": "def check(f):\n    assert f(1) == 2\n", "entry_point": "inc"}
    assert hub_code.process_humaneval(he, [["    return x + 1\n", "    return x\n"]]) == {"pass@1": 0.5, "maj@n": 1.0}


def test_adding_the_program_world_leaves_other_datasets_fingerprints_as_they_were():
    arith = plain_dataset(DatasetConfig(source="toy-arithmetic"))
    programs = plain_dataset(DatasetConfig(source="toy-programs"))
    assert "programs" not in arith and "programs" in programs and "tests_field" not in arith
