"""Partial rewards for Text-to-SQL (Reasoning-SQL, #101): credit for a query that is not right yet, to be summed with
`sql_match` (execution accuracy) by the stage's reward weights.

- `sql_syntax`: 1 when the query runs on the row's database without an error, else 0 (executed in the sandbox).
- `schema_linking`: Jaccard similarity of the schema items (tables and columns) the query names and those the gold
  query (`answer`) names: |P & G| / |P | G|, 1 when neither names any.
- `ngram_similarity`: Jaccard similarity of the two queries' token n-grams (keywords, names and literals, lowercased):
  |P & G| / |P | G|, 0 for an empty query.

The last two read text only, nothing runs. Their schema comes from the row's `database`: the CREATE TABLE statements
of its SQL text, or the tables of the SQLite file it names, read once per database.
"""

from __future__ import annotations

import functools
import re

from harness.rewards import RewardFn, register_reward
from harness.rewards.code import _check, _report, code_of, sql_groups

TOKEN = re.compile(r"'(?:[^']|'')*'|\"[^\"]+\"|`[^`]+`|\[[^\]]+\]|[A-Za-z_][A-Za-z0-9_$]*|\d+(?:\.\d+)?|<=|>=|<>|!=|\S")
CREATE = re.compile(r"CREATE\s+(?:TEMP\w*\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?[^;]*?\((?:[^;]*)\)", re.IGNORECASE)


def tokens(query: str) -> list[str]:
    """A query's tokens, lowercased; quoted names lose their quotes (string literals keep theirs).

    >>> tokens('SELECT "Name", COUNT(*) FROM people WHERE age >= 30')
    ['select', 'name', ',', 'count', '(', '*', ')', 'from', 'people', 'where', 'age', '>=', '30']
    """
    out = []
    for t in TOKEN.findall(query):
        out.append(t[1:-1].lower() if t[0] in '"`[' else t.lower())
    return out


@functools.lru_cache(maxsize=256)
def schema_items(database: str) -> frozenset[str]:
    """The lowercased table and column names of a row's database (its SQL text's CREATE TABLE statements only, run
    into an empty in-memory database; or the SQLite file it names, opened read-only).

    >>> sorted(schema_items("CREATE TABLE people (name TEXT, age INTEGER);INSERT INTO people VALUES ('a', 1);"))
    ['age', 'name', 'people']
    """
    import sqlite3

    if ";" in database:
        db = sqlite3.connect(":memory:")
        for statement in CREATE.findall(database):
            try:
                db.execute(statement)
            except sqlite3.Error:
                continue
    else:
        db = sqlite3.connect(f"file:{database}?mode=ro&immutable=1", uri=True)
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")]
    items = {t.lower() for t in tables}
    for table in tables:
        items |= {r[1].lower() for r in db.execute(f'PRAGMA table_info("{table}")')}
    db.close()
    return frozenset(items)


def jaccard(a: set, b: set, empty: float) -> float:
    """|a & b| / |a | b|, and `empty` when both are empty.

    >>> jaccard({1, 2, 3}, {2, 3, 4}, 0.0), jaccard(set(), set(), 1.0)
    (0.5, 1.0)
    """
    return len(a & b) / len(a | b) if a | b else empty


@register_reward("schema_linking", needs_labels=True)
def schema_linking() -> RewardFn:
    """Jaccard similarity of the schema items the completion's query and the gold query use.

    >>> db = "CREATE TABLE people (name TEXT, age INTEGER, city TEXT);"
    >>> schema_linking()(["SELECT name FROM people WHERE age > 3", "SELECT city FROM people"],
    ...                  answer=["SELECT name FROM people WHERE city = 'x'"] * 2, database=[db] * 2)
    [0.5, 0.6666666666666666]
    """

    def reward(completions: list[str], answer: list[str], database: list[str], **_) -> list[float]:
        scores = []
        for completion, gold, db in zip(completions, answer, database, strict=True):
            items = schema_items(db)
            used = {t for t in tokens(code_of(completion)) if t in items}
            scores.append(jaccard(used, {t for t in tokens(gold) if t in items}, empty=1.0))
        return scores

    return reward


def _check_n(n: int = 2) -> None:
    if not 1 <= n <= 8:
        raise ValueError(f"ngram_similarity: n must be in [1, 8], got {n}")


@register_reward("ngram_similarity", needs_labels=True, validate=_check_n)
def ngram_similarity(n: int = 2) -> RewardFn:
    """Jaccard similarity of the completion's query's token n-grams and the gold query's.

    >>> ngram_similarity(n=2)(["SELECT a FROM t", "SELECT b FROM t", ""], answer=["SELECT a FROM t"] * 3)
    [1.0, 0.2, 0.0]
    """
    _check_n(n)

    def grams(query: str) -> set[tuple[str, ...]]:
        t = tokens(query)
        return {tuple(t[i : i + n]) for i in range(len(t) - n + 1)}

    def reward(completions: list[str], answer: list[str], **_) -> list[float]:
        return [jaccard(grams(code_of(c)), grams(a), empty=0.0) for c, a in zip(completions, answer, strict=True)]

    return reward


@register_reward("sql_syntax", needs_labels=False, runs_code=True, validate=_check)
def sql_syntax(timeout_s: float = 5.0, memory_mb: int = 512, isolation: str = "bubblewrap",
               workers: int = 0) -> RewardFn:  # fmt: skip
    """1 when the completion's query runs on the row's `database` without an error (any result), else 0. The
    completions on one database share a sandbox process, as `sql_match`'s groups do."""
    _check(None, isolation, timeout_s, memory_mb)
    from harness.grader.executed import database_files
    from harness.sandbox import check_isolation

    check_isolation(isolation)
    files: dict[str, dict[str, bytes]] = {}

    def files_of(db: str) -> dict[str, bytes]:
        if db not in files:
            files[db] = database_files(db)
        return files[db]

    def reward(completions: list[str], database: list[str], log_extra=None, **_) -> list[float]:
        queries = [code_of(c).strip() for c in completions]
        ran = sql_groups(queries, ["SELECT 1"] * len(queries), database, files_of, 0, timeout_s, memory_mb,
                         isolation, workers)  # fmt: skip
        scores, reasons = [], []
        for _, pred_side, failed in ran:
            error = failed or pred_side[1]
            scores.append(float(not error))
            reasons.append(error or "runs")
        _report(log_extra, reasons)
        return scores

    reward.isolation = isolation
    return reward
