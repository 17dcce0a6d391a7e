"""The toy Text-to-SQL world: splits, a table every row carries, equivalent queries graded right in the sandbox.

The grading tests need bubblewrap (installed by the fixture when we are root; else skipped with that reason)."""

from __future__ import annotations

import json
import sqlite3

import pytest

from harness.grader import EXTRACTORS
from harness.world.sql import SqlSpec, make_splits, table_sql
from tests.conftest import debian_package


@pytest.fixture(scope="module")
def splits():
    return make_splits(SqlSpec(n_train=100, n_pool=50, n_test=50, n_pretrain=300))


@pytest.fixture(scope="module")
def bubblewrap():
    debian_package("bubblewrap", "/usr/bin/bwrap", "the sandboxed grading tests")


def test_splits_are_disjoint_and_carry_one_table(splits):
    prompts = [r["prompt"] for rows in splits.values() for r in rows]
    assert len(prompts) == len(set(prompts)) == 500
    assert {r["database"] for rows in splits.values() for r in rows} == {table_sql(SqlSpec())}
    db = sqlite3.connect(":memory:")
    db.executescript(table_sql(SqlSpec()))
    assert db.execute("SELECT COUNT(*) FROM people").fetchone() == (60,)
    forms = sum(r["solution"] != r["answer"] for r in splits["pretrain"])
    assert 0.3 < forms / len(splits["pretrain"]) < 0.7


def test_every_written_form_returns_the_reference_rows_and_other_queries_do_not(splits, bubblewrap):
    grade = EXTRACTORS.get("sql_result")
    rows = splits["pretrain"][:40]
    for r in rows:
        gold = json.dumps({"query": r["answer"], "database": r["database"]})
        assert grade.canonical(grade(r["solution"]), gold) == gold, r
    gold = json.dumps({"query": rows[0]["answer"], "database": rows[0]["database"]})
    for wrong in ("SELECT name FROM people", "DROP TABLE people", "SELEC 1", "SELECT * FROM nothing", ""):
        assert grade.canonical(grade(wrong), gold) != gold, wrong


def test_the_pretraining_skill_check_grades_queries_by_their_rows(splits, bubblewrap):
    from harness.world.toy_model import _correct

    rows = splits["test"][:4]
    texts = [rows[0]["answer"], rows[1]["answer"] + "\ntrailing", "SELECT 1", "DELETE FROM people"]
    assert _correct(texts, rows) == [True, True, False, False]


def test_the_toy_task_scores_samples_by_their_rows(splits, bubblewrap):
    from harness.evaluation.tasks.utils import process_sql

    row = splits["test"][0]
    assert process_sql(row, [[row["answer"], "SELECT 1", row["answer"]]]) == {"pass@1": 2 / 3, "maj@n": 1.0}
