"""How many sandboxed executions per second the code rewards get, on this machine's cores.

    python bench/sandbox.py               # 400 executions per row
    python bench/sandbox.py --n 2000      # steadier numbers

Rows, each a batch of `--n` executions through `harness.sandbox.run_many` with as many workers as the process
has cores:

- bare: `/usr/bin/python3 -I -S -c pass` started directly, no sandbox (the floor: process start-up);
- weak: the weak-rlimits-only mode (prlimit, nobody, a private directory);
- bubblewrap: the real sandbox (namespaces, a fresh root, limits);
- unit_tests: the `unit_tests` reward on a correct 3-assert program (one bubblewrap run per completion);
- sql_match: the `sql_match` reward on a 3-row SQLite database, in groups of 8 completions per question (GRPO's
  group: the reward runs each group's queries in one sandbox process), so the rate is completions per second.

Numbers (executions per second, milliseconds per execution per worker, the overhead over `bare`, and the wall time
of the batch) go to `--out` as JSON and to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import sandbox  # noqa: E402
from harness.rewards import REWARDS  # noqa: E402

PROGRAM = "def add(a, b):\n    return a + b\n"
TESTS = ["assert add(2, 3) == 5", "assert add(-1, 1) == 0", "assert add(0, 0) == 0"]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bare(n: int, workers: int) -> None:
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda _: subprocess.run([sandbox.PYTHON, "-I", "-S", "-c", "pass"], check=True), range(n)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--out", default="results/bench/sandbox.json")
    a = ap.parse_args()
    workers = len(os.sched_getaffinity(0))
    if problem := sandbox.bubblewrap_problem():
        print(f"bubblewrap unavailable: {problem}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "t.sqlite")
        with sqlite3.connect(db) as c:
            c.execute("CREATE TABLE t (a INTEGER, b TEXT)")
            c.executemany("INSERT INTO t VALUES (?, ?)", [(1, "x"), (2, "y"), (3, "x")])
        unit, sql = REWARDS.get("unit_tests").build(), REWARDS.get("sql_match").build()
        rows = {
            "bare": lambda: bare(a.n, workers),
            "weak": lambda: sandbox.run_many([{"program": "pass", "isolation": "weak-rlimits-only"}] * a.n, workers),
            "bubblewrap": lambda: sandbox.run_many([{"program": "pass"}] * a.n, workers),
            "unit_tests": lambda: unit([PROGRAM] * a.n, tests=[TESTS] * a.n),
            "sql_match": lambda: sql(
                ["SELECT a FROM t WHERE b = 'x'"] * a.n,
                answer=[f"SELECT a FROM t WHERE b='x' AND a > {-1 - i // 8}" for i in range(a.n)],  # 8 per question
                database=[db] * a.n,
            ),  # fmt: skip
        }
        results = {}
        for name, fn in rows.items():
            seconds = timed(fn)
            per_ms = 1000 * seconds * workers / a.n  # wall time one worker spends per execution
            over = per_ms - results["bare"]["ms_per_execution"] if results else 0.0
            results[name] = {"n": a.n, "seconds": round(seconds, 3), "per_second": round(a.n / seconds, 1),
                             "ms_per_execution": round(per_ms, 2), "overhead_ms_vs_bare": round(over, 2)}  # fmt: skip
            print(f"{name:12s} {a.n / seconds:8.1f} executions/s  {per_ms:6.1f} ms each, +{over:5.1f} ms over bare  "
                  f"({a.n} in {seconds:.1f} s, {workers} workers)")  # fmt: skip
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"workers": workers, "cpu": os.cpu_count(), "rows": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
