"""Rewards that execute model-written code, every execution inside `harness.sandbox`.

- `unit_tests`: the completion is a Python program; the row's `tests` column holds its tests, either assert
  statements (run after the program, in the same sandbox) or stdin/stdout pairs (one sandboxed run per pair,
  its output compared here, outside the sandbox, so a program cannot forge a pass). Reward: the fraction of
  tests passed, or 1/0 for all-or-nothing.
- `sql_match`: the completion is an SQLite query; it and the gold query (`answer`) run on the row's database
  (`database`: a path to an SQLite file, opened read-only, or the SQL text that creates it) in the sandbox; the reward
  is 1 when their result sets are equal (as sets of rows, as BIRD's execution accuracy compares them; `ordered: true`
  compares lists). Group-batched: the completions of one question (same gold query and database) share one sandbox
  process, each query read-only and with its own time limit (harness.grader.executed.sql_group_job).

A program that fails, times out, exhausts a limit or prints too much scores 0 and the reason is logged
(`log_extra("sandbox", ...)`); the training step goes on. The sandbox refuses to start when it cannot isolate,
unless the reward names the weak mode (`isolation: weak-rlimits-only`).

Assert tests report their verdicts as lines tagged with a nonce the runner reads from stdin before the program
runs; the program never sees it in its own text. A program that inspects the interpreter's frames could still
find it: stdin/stdout tests are the form a hostile policy cannot game.
"""

from __future__ import annotations

import json
import re
import secrets

from harness.grader.executed import database_files, same_rows, sql_group_job, sql_outcome
from harness.rewards import RewardFn, register_reward

FENCE = re.compile(r"```(?:python|py|sql|sqlite)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def code_of(completion: str) -> str:
    """The last fenced code block of a completion, or the whole completion when it has none.

    >>> code_of("Here:\\n```python\\nprint(1)\\n```")
    'print(1)\\n'
    >>> code_of("SELECT 1")
    'SELECT 1'
    """
    blocks = FENCE.findall(completion)
    return blocks[-1] if blocks else completion


def _tests_of(value) -> list:
    """A row's tests: a list (of assert strings or {input, output} dicts), {inputs: [...], outputs: [...]} (the
    stdin/stdout columns of code_contests and TACO), or the JSON text of either.

    >>> _tests_of('{"inputs": ["1 2"], "outputs": ["3"]}'), _tests_of(["assert f(1) == 2"])
    ([{'input': '1 2', 'output': '3'}], ['assert f(1) == 2'])
    """
    tests = json.loads(value) if isinstance(value, str) else value
    if (
        isinstance(tests, dict)
        and {"inputs", "outputs"} <= set(tests)
        or isinstance(tests, dict)
        and {"input", "output"} <= set(tests)
    ):
        ins, outs = (tests["inputs"], tests["outputs"]) if "inputs" in tests else (tests["input"], tests["output"])
        tests = [{"input": i, "output": o} for i, o in zip(ins, outs, strict=True)]
    if not isinstance(tests, list) or not tests:
        raise ValueError(f"unit_tests: a row's tests must be a non-empty list, got {str(value)[:80]!r}")
    return tests


ASSERT_RUNNER = """\
import sys as _s
_n = _s.stdin.readline().strip()
_t = {tests!r}
_w = _s.stdout.write
_f = _s.stdout.flush
del _s
try:
    exec(compile({program!r}, "<program>", "exec"), {{"__name__": "__main__"}})
except BaseException as _e:
    _w(_n + ":program:" + type(_e).__name__ + "\\n")
    _f()
    raise SystemExit(1)
_g = {{"__name__": "__main__"}}
exec(compile({program!r}, "<program>", "exec"), _g)
for _i, _c in enumerate(_t):
    try:
        exec(compile(_c, "<test>", "exec"), _g)
        _w(_n + ":" + str(_i) + ":pass\\n")
    except BaseException as _e:
        _w(_n + ":" + str(_i) + ":fail\\n")
    _f()
"""


def _heads(prompts: list | None, n: int) -> list[str]:
    """The prompts as program text: plain strings only (a chat prompt is not the start of a program)."""
    if prompts is None or len(prompts) != n or not all(isinstance(p, str) for p in prompts):
        raise ValueError("unit_tests(prepend_prompt=True) needs plain-text prompts, one per completion")
    return list(prompts)


def _assert_job(program: str, tests: list[str], limits, isolation: str) -> tuple[dict, str]:
    nonce = secrets.token_hex(16)
    runner = ASSERT_RUNNER.format(program=program, tests=tests)
    return {"program": runner, "stdin": nonce + "\n", "limits": limits, "isolation": isolation}, nonce


def _passed_asserts(outcome, nonce: str, n: int) -> int:
    lines = set(outcome.stdout.splitlines())
    return sum(f"{nonce}:{i}:pass" in lines for i in range(n))


def _limits(timeout_s: float, memory_mb: int):
    from harness.sandbox import Limits

    return Limits(wall_s=timeout_s, cpu_s=max(1, int(timeout_s + 0.999)), memory_mb=memory_mb)


def _check(mode: str | None = None, isolation: str = "bubblewrap", timeout_s: float = 5.0, memory_mb: int = 512,
           **_) -> None:  # fmt: skip
    from harness.sandbox import ISOLATIONS

    if mode is not None and mode not in ("fraction", "all"):
        raise ValueError(f"mode must be 'fraction' or 'all', got {mode!r}")
    if isolation not in ISOLATIONS:
        raise ValueError(f"isolation must be one of {', '.join(ISOLATIONS)}, got {isolation!r}")
    if not 0 < timeout_s <= 600:
        raise ValueError(f"timeout_s must be in (0, 600], got {timeout_s}")
    if not 64 <= memory_mb <= 65536:
        raise ValueError(f"memory_mb must be in [64, 65536], got {memory_mb}")


def _group_limits(timeout_s: float, memory_mb: int, queries: int):
    """A group job's limits: each query has `timeout_s` inside the job; the job's wall and CPU time cover them all
    (capped at 600 s)."""
    from harness.sandbox import Limits

    budget = min(600.0, timeout_s * queries + 2.0)
    return Limits(wall_s=budget, cpu_s=max(1, int(budget + 0.999)), memory_mb=memory_mb)


def sql_groups(queries: list[str], golds: list[str], databases: list[str], files_of, max_rows: int, timeout_s: float,
               memory_mb: int, isolation: str, workers: int) -> list[tuple[tuple | None, tuple | None, str]]:  # fmt: skip
    """Run every query beside its gold query, one sandbox job per (gold, database) group: per query, (gold's
    (rows, error), its own (rows, error), the job's failure reason or ""); None sides when the job gave no result."""
    from harness.sandbox import run_many

    groups: dict[tuple[str, str], list[int]] = {}
    for i, key in enumerate(zip(golds, databases, strict=True)):
        groups.setdefault(key, []).append(i)
    jobs, nonces = [], []
    for (gold, db), members in groups.items():
        job, nonce = sql_group_job([queries[i] for i in members], gold, files_of(db), max_rows, timeout_s)
        limits = _group_limits(timeout_s, memory_mb, len(members) + 1)
        jobs.append(job | {"limits": limits, "isolation": isolation})
        nonces.append(nonce)
    out: list = [None] * len(queries)
    for (_, members), outcome, nonce in zip(groups.items(), run_many(jobs, workers or None), nonces, strict=True):
        got = sql_outcome(outcome, nonce)
        for k, i in enumerate(members):
            out[i] = (None, None, outcome.reason or "no result") if got is None else (got["gold"], got["preds"][k], "")
    return out


def _report(log_extra, outcomes_by_completion: list[str]) -> None:
    if callable(log_extra):
        log_extra("sandbox", outcomes_by_completion)


@register_reward("unit_tests", needs_labels=False, runs_code=True, validate=_check)
def unit_tests(mode: str = "fraction", timeout_s: float = 5.0, memory_mb: int = 512, isolation: str = "bubblewrap",
               workers: int = 0, prepend_prompt: bool = False) -> RewardFn:  # fmt: skip
    """Fraction of the row's `tests` the completion's program passes (`mode: all`: 1 only when every one does).

    Assert tests: `["assert add(2, 3) == 5", ...]`; stdin/stdout tests: `[{"input": "2 3", "output": "5"}, ...]`
    (outputs compared with surrounding whitespace stripped). `prepend_prompt`: the program is the prompt followed by
    the completion (the prompt writes the function's head, as HumanEval's and the toy program world's do).
    """
    _check(mode, isolation, timeout_s, memory_mb)
    from harness.sandbox import check_isolation, run_many

    check_isolation(isolation)
    limits = _limits(timeout_s, memory_mb)

    def reward(completions: list[str], tests: list, prompts: list | None = None, log_extra=None, **_) -> list[float]:
        jobs, plan = [], []  # plan: per completion, (kind, first job, count, nonce or expected outputs)
        heads = _heads(prompts, len(completions)) if prepend_prompt else [""] * len(completions)
        for completion, row_tests, head in zip(completions, tests, heads, strict=True):
            program, cases = head + code_of(completion), _tests_of(row_tests)
            if all(isinstance(c, str) for c in cases):
                job, nonce = _assert_job(program, cases, limits, isolation)
                plan.append(("asserts", len(jobs), len(cases), nonce))
                jobs.append(job)
            else:
                plan.append(("io", len(jobs), len(cases), [str(c["output"]).strip() for c in cases]))
                jobs += [{"program": program, "stdin": str(c["input"]), "limits": limits, "isolation": isolation}
                         for c in cases]  # fmt: skip
        outcomes = run_many(jobs, workers or None)
        scores, reasons = [], []
        for kind, first, n, extra in plan:
            if kind == "asserts":
                passed = _passed_asserts(outcomes[first], extra, n)
                raised = [
                    x.split(":")[2] for x in outcomes[first].stdout.splitlines() if x.startswith(f"{extra}:program:")
                ]
                reasons.append(f"program raised {raised[0]}" if raised else outcomes[first].reason or f"{passed}/{n}")
            else:
                mine = outcomes[first : first + n]
                passed = sum(o.ok and o.stdout.strip() == want for o, want in zip(mine, extra, strict=True))
                reasons.append(next((o.reason for o in mine if not o.ok), f"{passed}/{n}"))
            scores.append(passed / n if mode == "fraction" else float(passed == n))
        _report(log_extra, reasons)
        return scores

    reward.isolation = isolation
    return reward


@register_reward("sql_match", needs_labels=True, runs_code=True, validate=_check)
def sql_match(ordered: bool = False, max_rows: int = 10000, timeout_s: float = 5.0, memory_mb: int = 512,
              isolation: str = "bubblewrap", workers: int = 0) -> RewardFn:  # fmt: skip
    """1 when the completion's query returns the gold query's (`answer`) result on the row's `database`, else 0; None
    (unscorable: no advantage) when the gold query itself fails there."""
    _check(None, isolation, timeout_s, memory_mb)
    from harness.sandbox import check_isolation

    check_isolation(isolation)
    databases: dict[str, dict[str, bytes]] = {}

    def files_of(db: str) -> dict[str, bytes]:
        if db not in databases:
            databases[db] = database_files(db)
        return databases[db]

    def reward(
        completions: list[str], answer: list[str], database: list[str], log_extra=None, **_
    ) -> list[float | None]:
        queries = [code_of(c).strip() for c in completions]
        ran = sql_groups(queries, answer, database, files_of, max_rows, timeout_s, memory_mb, isolation, workers)
        scores, reasons = [], []
        for gold_side, pred_side, failed in ran:
            if failed:
                scores.append(0.0)
                reasons.append(failed)
                continue
            (gold_rows, gold_error), (pred_rows, pred_error) = gold_side, pred_side
            if gold_error:  # a dataset row whose own query fails (another SQL dialect): unscorable, not wrong
                scores.append(None)
                reasons.append(f"gold query fails: {gold_error}")
                continue
            scores.append(float(same_rows(pred_rows, gold_rows, ordered)))
            reasons.append(pred_error or ("match" if scores[-1] else "different rows"))
        _report(log_extra, reasons)
        return scores

    reward.isolation = isolation
    return reward
