"""Reasoning-SQL's partial rewards (harness/rewards/sql.py): hand-computed scores, the weighted sum a bundle asks
for, and the syntax check running in the sandbox."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from harness.config.stage import RewardSpec
from harness.rewards import REWARDS
from tests.conftest import debian_package

DB = "CREATE TABLE people (name TEXT, age INTEGER, city TEXT, pets INTEGER);INSERT INTO people VALUES ('ana0',30,'oslo',1),('ben1',50,'rome',2);"
GOLD = "SELECT name FROM people WHERE city = 'oslo' AND age > 40"


@pytest.fixture(scope="module", autouse=True)
def bubblewrap():
    debian_package("bubblewrap", "/usr/bin/bwrap", "the SQL reward tests")


def test_schema_linking_is_the_jaccard_similarity_of_the_schema_items_named():
    queries = [
        GOLD,
        "SELECT name FROM people WHERE city = 'oslo'",  # {name, people, city} of {name, people, city, age}: 3/4
        "SELECT COUNT(*) FROM people WHERE pets > 1",  # {people, pets} vs gold's four: 1/5
        "SELECT 'name', 'age'",  # string literals are not schema items: {} vs four: 0
        "SELECT x FROM nowhere",  # names outside the schema do not count: 0
    ]
    scores = REWARDS.get("schema_linking").build()(queries, answer=[GOLD] * 5, database=[DB] * 5)
    assert scores == [1.0, 0.75, 0.2, 0.0, 0.0]


def test_schema_linking_reads_an_sqlite_file_read_only(tmp_path):
    path = tmp_path / "shop.sqlite"
    with sqlite3.connect(path) as db:
        db.execute('CREATE TABLE "Items" (name TEXT, price INTEGER)')
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    scores = REWARDS.get("schema_linking").build()(
        ['SELECT "Name" FROM items', "SELECT price FROM items"], answer=["SELECT name FROM Items"] * 2,
        database=[str(path)] * 2,
    )  # fmt: skip
    assert scores == [1.0, 1 / 3] and hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_ngram_similarity_counts_shared_token_ngrams():
    # gold bigrams: select-name name-from from-people people-where where-city city-= =-'oslo' 'oslo'-and and-age
    # age-> >-40 (11). The second query's 7 bigrams are all gold's: 7/11. The third shares 6 of its 7 (not
    # ='rome'): 6 / (7 + 11 - 6).
    queries = [GOLD, "SELECT name FROM people WHERE city = 'oslo'", "SELECT name FROM people WHERE city = 'rome'", ""]
    scores = REWARDS.get("ngram_similarity").build(n=2)(queries, answer=[GOLD] * 4)
    assert scores == [1.0, 7 / 11, 6 / 12, 0.0]
    assert REWARDS.get("ngram_similarity").args_problem({"n": 0}) is not None


def test_sql_syntax_runs_the_query_in_the_sandbox_and_credits_any_query_that_runs():
    queries = [
        "SELECT name FROM people WHERE age > 99",  # runs, no rows: still 1
        "SELEC name FROM people",
        "SELECT nope FROM people",
        "SELECT 1; SELECT 2",  # one statement only
        "DROP TABLE people",  # every query runs read-only: a write fails (and cannot change what the next query sees)
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
    ]
    logged = {}
    scores = REWARDS.get("sql_syntax").build(timeout_s=2.0)(
        queries, database=[DB] * len(queries), log_extra=lambda k, v: logged.__setitem__(k, v)
    )
    assert scores == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0], logged["sandbox"]
    assert "syntax error" in logged["sandbox"][1] and "no such column" in logged["sandbox"][2]
    assert "readonly" in logged["sandbox"][4]
    assert logged["sandbox"][5] == "OperationalError: interrupted"  # its own time limit; the others still ran


def test_the_bundles_weighted_sum_by_hand():
    """partial_rewards in papers/reasoning-sql: 3 x sql_match + sql_syntax + schema_linking + ngram_similarity."""
    specs = [RewardSpec(name="sql_match", weight=3.0), RewardSpec(name="sql_syntax"),
             RewardSpec(name="schema_linking"), RewardSpec(name="ngram_similarity", args={"n": 2})]  # fmt: skip
    fns = [REWARDS.get(s.name).build(**s.args) for s in specs]
    right = "SELECT name FROM people WHERE age > 40 AND city = 'oslo'"  # same rows, conditions swapped
    near = "SELECT name FROM people WHERE city = 'oslo'"
    columns = {"answer": [GOLD] * 2, "database": [DB] * 2}
    per_fn = [fn([right, near], **columns) for fn in fns]
    total = [sum(w * s[i] for w, s in zip([3, 1, 1, 1], per_fn, strict=True)) for i in range(2)]
    # right: match 1, runs 1, schema 1, bigrams: 11 each, 8 shared (not where-age, 40-and, and-city) -> 8/14
    # near: match 0 (ana0 is 30: gold has no rows, near returns ana0), runs 1, schema 3/4, bigrams 7/11
    assert total == pytest.approx([5 + 8 / 14, 1 + 0.75 + 7 / 11])
