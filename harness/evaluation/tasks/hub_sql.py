"""lm-eval hooks for hub Text-to-SQL benchmarks graded by execution in harness.sandbox (the `sql_result` extractor).

gretelai/synthetic_text_to_sql rows: sql_prompt (the question), sql_context (CREATE TABLE and INSERT statements),
sql (the gold query), and descriptive columns.
"""

from __future__ import annotations

import json

from harness.evaluation.tasks.utils import graded_scores


def gretel_text(doc: dict) -> str:
    """The tables and the question, asking for one SQLite query in a fenced block.

    >>> gretel_text({"sql_context": "CREATE TABLE t (a INT);", "sql_prompt": "How many rows?"}).splitlines()[0]
    'Tables:'
    """
    return (f"Tables:\n{doc['sql_context']}\n\nQuestion: {doc['sql_prompt']}\n\n"
            "Answer with one SQLite query in a ```sql code block.")  # fmt: skip


def gretel_target(doc: dict) -> str:
    """The gold query and the SQL building its tables, for `sql_result`."""
    return json.dumps({"query": doc["sql"], "database": doc["sql_context"]})


def process_gretel(doc: dict, results: list[list[str]]) -> dict[str, float]:
    """pass@1: the share of samples whose query returns the gold rows; maj@n: whether the query written most often does."""
    return graded_scores("sql_result", gretel_target(doc), results[0])
