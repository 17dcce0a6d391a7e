"""Graders that run the answer: a toy program's values, a benchmark program's tests, an SQL query's rows. Each runs
in harness.sandbox (bubblewrap; refused where it cannot isolate) and reports through a nonce the answer never sees, so
an answer cannot forge its own verdict. Registered in the extractor registry beside the text graders.
"""

from __future__ import annotations

import functools
import re

from harness.grader import EXTRACTORS, Extractor

PROGRAM_INPUTS = (-3, -1, 0, 1, 2, 5, 7, 10)
"""Where a written expression of x is compared with the reference (the toy program world's test inputs)."""

_COMPARE = """\
import json, sys
nonce = sys.stdin.readline().strip()
def values(source):
    try:
        f = eval("lambda x: (" + source + "\\n)", {{}})
    except BaseException as e:
        return type(e).__name__
    out = []
    for x in {inputs!r}:
        try:
            out.append(repr(f(x)))
        except BaseException as e:
            out.append(type(e).__name__)
    return out
gold = values({gold!r})
mine = values({answer!r})
sys.stdout.write(nonce + json.dumps([mine, gold]) + "\\n")
"""


def extract_expression(text: str) -> str | None:
    """The first line of a completion, stripped: a one-line program (the toy program world's return expression).

    >>> extract_expression(" (x+3)*2\\nmore"), extract_expression("   ")
    ('(x+3)*2', None)
    """
    line = text.strip().split("\n", 1)[0].strip()
    return line or None


@functools.lru_cache(maxsize=1 << 16)
def same_values(answer: str, gold: str) -> bool:
    """Whether the expression `answer` gives the reference expression `gold`'s value at every one of
    PROGRAM_INPUTS, both run as `lambda x: ...` inside harness.sandbox (bubblewrap; refused where it cannot isolate).
    An error is a value like any other: both must raise it, or neither."""
    import json
    import secrets

    from harness.sandbox import Limits, run

    nonce = secrets.token_hex(16)
    out = run(_COMPARE.format(inputs=PROGRAM_INPUTS, gold=gold, answer=answer), stdin=nonce + "\n",
              limits=Limits(wall_s=5.0, cpu_s=5, memory_mb=256))  # fmt: skip
    line = next((x for x in out.stdout.splitlines() if x.startswith(nonce)), None)
    if line is None:
        return False
    mine, theirs = json.loads(line[len(nonce) :])
    return isinstance(theirs, list) and mine == theirs


EXTRACTORS.register("python_expression")(
    Extractor(extract_expression, "1+sandbox-bubblewrap", lambda t: t.strip(), same_values)
)


_PROGRAM_RUNNER = """\
import sys as _sys
_nonce = _sys.stdin.readline().strip()
_write = _sys.stdout.write
exec(compile({program!r}, "<program>", "exec"), {{"__name__": "__main__"}})
_write("\\n" + _nonce + "\\n")
"""


def gold_program(target: str) -> str:
    """A code benchmark's target as its task writes it: JSON {"prefix", "tests", "entry_point"} (the function's
    signature and docstring to put before a bare body, the test code, the function the tests call)."""
    return target.strip()


@functools.lru_cache(maxsize=1 << 14)
def passes_tests(answer: str, gold: str) -> bool:
    """Whether the program `answer` (with the prompt's signature in front when it does not define the entry point
    itself) runs the gold's tests to their end inside harness.sandbox (bubblewrap; refused where it cannot isolate).
    The end is marked by a nonce the program never sees in its text, so exiting early is a failure."""
    import json
    import secrets

    from harness.sandbox import Limits, run

    spec = json.loads(gold)
    entry = spec.get("entry_point")
    defines = entry and re.search(rf"^\s*def\s+{re.escape(entry)}\s*\(", answer, re.MULTILINE)
    program = ("" if defines or not spec.get("prefix") else spec["prefix"]) + answer + "\n\n" + spec["tests"] + "\n"
    nonce = secrets.token_hex(16)
    out = run(_PROGRAM_RUNNER.format(program=program), stdin=nonce + "\n",
              limits=Limits(wall_s=10.0, cpu_s=10, memory_mb=1024))  # fmt: skip
    return out.ok and nonce in out.stdout.splitlines()


def extract_program(text: str) -> str | None:
    """The program of a completion: its last fenced code block, or the whole text when it has none.

    >>> extract_program("Sure:\\n```python\\ndef f():\\n    return 1\\n```\\n"), extract_program("  ")
    ('def f():\\n    return 1\\n', None)
    """
    blocks = re.findall(r"```(?:python|py|Python)?[ \t]*\n(.*?)```", text, re.DOTALL)
    code = blocks[-1] if blocks else text
    return code if code.strip() else None


EXTRACTORS.register("python_program")(Extractor(extract_program, "1+sandbox-bubblewrap", gold_program, passes_tests))


def database_files(database: str) -> dict[str, bytes]:
    """What the sandbox gets of a row's `database`: the SQL text that creates the database (`db.sql`, run into an
    in-memory database) when it holds statements (a `;`), else the bytes of the SQLite file it names (`db.sqlite`)."""
    from pathlib import Path

    if ";" not in database:  # SQL that creates tables has statements; a file name has none
        return {"db.sqlite": Path(database).read_bytes()}
    return {"db.sql": database.encode()}


_SQL_GROUP_RUNNER = """\
import json, os, sqlite3, sys, time
nonce = sys.stdin.readline().strip()
if os.path.exists("/sandbox/db.sql"):
    db = sqlite3.connect(":memory:")
    db.executescript(open("/sandbox/db.sql").read())
else:
    db = sqlite3.connect("file:/sandbox/db.sqlite?mode=ro&immutable=1", uri=True)
deadline = [0.0]
db.set_progress_handler(lambda: int(time.monotonic() > deadline[0]), 1000)
def rows(query):
    try:
        db.execute("PRAGMA query_only = ON")
        deadline[0] = time.monotonic() + {query_s}
        return [list(r) for r in db.execute(query).fetchmany({limit})], None
    except Exception as e:
        return None, type(e).__name__ + ": " + str(e)[:200]
out = {{"gold": rows({gold!r}), "preds": [rows(q) for q in {preds!r}]}}
sys.stdout.write(nonce + json.dumps(out, default=repr) + "\\n")
"""


def sql_group_job(preds: list[str], gold: str, files: dict[str, bytes], max_rows: int = 10000,
                  query_s: float = 5.0) -> tuple[dict, str]:  # fmt: skip
    """One sandbox job running the gold query once and then every query of `preds` on the same database (a group of
    completions for one question): one process start for the group. Each query runs alone, read-only (`query_only`
    is set again before it, so no query changes what the next one sees), and is interrupted after `query_s`
    seconds (its error then says so), so one runaway query costs only its own score."""
    import secrets

    nonce = secrets.token_hex(16)
    program = _SQL_GROUP_RUNNER.format(gold=gold, preds=list(preds), limit=max_rows + 1, query_s=float(query_s))
    return {"program": program, "stdin": nonce + "\n", "files": files}, nonce


def sql_job(pred: str, gold: str, files: dict[str, bytes], max_rows: int = 10000) -> tuple[dict, str]:
    """A sandbox job running the gold query and one predicted query on one database (a group of one)."""
    return sql_group_job([pred], gold, files, max_rows)


def sql_outcome(outcome, nonce: str) -> dict | None:
    """{"gold": [rows, error], "preds": [[rows, error], ...]} from a finished sql_job or sql_group_job, or None when
    it gave no result."""
    import json

    line = next((x for x in outcome.stdout.splitlines() if x.startswith(nonce)), None)
    return None if line is None else json.loads(line[len(nonce) :])


def same_rows(pred: list | None, gold: list | None, ordered: bool) -> bool:
    """Result sets equal: as sets of rows (BIRD), or as lists when `ordered`.

    >>> same_rows([[1, "a"], [2, "b"]], [[2, "b"], [1, "a"]], ordered=False)
    True
    >>> same_rows([[1, "a"], [2, "b"]], [[2, "b"], [1, "a"]], ordered=True)
    False
    """
    import json

    if pred is None or gold is None:
        return False
    if ordered:
        return pred == gold
    return {json.dumps(r) for r in pred} == {json.dumps(r) for r in gold}


def extract_query(text: str) -> str | None:
    r"""A completion's SQL query: its last fenced block, else its first line, stripped.

    >>> extract_query("SELECT 1\nexplanation"), extract_query("```sql\nSELECT a\nFROM t\n```")
    ('SELECT 1', 'SELECT a\nFROM t')
    """
    blocks = re.findall(r"```(?:sql|sqlite)?[ \t]*\n(.*?)```", text, re.DOTALL | re.IGNORECASE)
    query = (blocks[-1] if blocks else text.strip().split("\n", 1)[0]).strip()
    return query or None


@functools.lru_cache(maxsize=1 << 16)
def same_result(answer: str, gold: str) -> bool:
    """Whether the query `answer` returns the gold query's rows (as a set) on the gold's database: `gold` is JSON
    {"query", "database"} (a file path or the SQL creating it); both run in harness.sandbox (bubblewrap)."""
    import json

    from harness.sandbox import Limits, run

    spec = json.loads(gold)
    job, nonce = sql_job(answer, spec["query"], database_files(spec["database"]))
    got = sql_outcome(run(**job, limits=Limits(wall_s=5.0, cpu_s=5, memory_mb=512)), nonce)
    if got is None or got["gold"][1]:
        return False
    return same_rows(got["preds"][0][0], got["gold"][0], ordered=False)


EXTRACTORS.register("sql_result")(Extractor(extract_query, "1+sandbox-bubblewrap", lambda t: t.strip(), same_result))
