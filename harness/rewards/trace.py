"""A white-box execution reward (ExecVerify, #182): the completion predicts a program's trace, the values its
statements produce in order (what each assignment gives, what each print writes), `;`-separated on the last line; a tracer runs the
row's `program` in the sandbox and the reward is the fraction of the trace predicted right, position by position:
matched / max(len(predicted), len(traced)). Where `exact_match` credits only the final output, this credits each
step, so a completion that gets three of four steps right is told so.

The traced program is the dataset's, not the model's; it still runs in the sandbox, since at paper scale programs
come from data nobody here wrote. Each distinct program runs once per reward function (its trace is kept).
"""

from __future__ import annotations

import json
import secrets

from harness.rewards import RewardFn, register_reward
from harness.rewards.code import _check, _limits, _report

TRACER = """\
import io, json, sys
_n = sys.stdin.readline().strip()
_src = {program!r}
_events, _seen, _buf, _out = [], {{}}, io.StringIO(), sys.stdout
def _flush():
    _events.extend(_buf.getvalue().split())
    _buf.seek(0)
    _buf.truncate()
def _trace(frame, event, arg):
    if frame.f_code.co_filename != "<program>":
        return None
    if event in ("line", "return"):
        _flush()
        for k, v in list(frame.f_locals.items()):
            if not k.startswith("__") and (k not in _seen or _seen[k] != v):
                _seen[k] = v
                _events.append(repr(v))
    return _trace
_code = compile(_src, "<program>", "exec")
sys.stdout = _buf
sys.settrace(_trace)
try:
    exec(_code, {{"__name__": "__main__"}})
finally:
    sys.settrace(None)
    sys.stdout = _out
_flush()
_out.write(_n + json.dumps(_events) + "\\n")
"""


def trace_job(program: str) -> tuple[dict, str]:
    """A sandbox job tracing `program`, and the nonce of its result line."""
    nonce = secrets.token_hex(16)
    return {"program": TRACER.format(program=program), "stdin": nonce + "\n"}, nonce


def predicted(completion: str) -> list[str]:
    """The values a completion predicts: its last non-empty line (after any reasoning) split at `;`, each stripped.

    >>> predicted("first a=7, then b=10\\n 7;10; 20;13\\n")
    ['7', '10', '20', '13']
    """
    line = completion.strip().rsplit("\n", 1)[-1]
    return [v.strip() for v in line.split(";")] if line else []


def trace_score(pred: list[str], gold: list[str]) -> float:
    """matched positions / max(len(pred), len(gold)).

    >>> trace_score(["7", "10", "21", "13"], ["7", "10", "20", "13"]), trace_score(["7"], ["7", "10"])
    (0.75, 0.5)
    >>> trace_score(["7", "10", "20", "13", "0"], ["7", "10", "20", "13"]), trace_score([], ["1"])
    (0.8, 0.0)
    """
    n = max(len(pred), len(gold))
    return sum(p == g for p, g in zip(pred, gold, strict=False)) / n if n else 0.0


@register_reward("execution_trace", needs_labels=False, runs_code=True, validate=_check)
def execution_trace(timeout_s: float = 5.0, memory_mb: int = 512, isolation: str = "bubblewrap",
                    workers: int = 0) -> RewardFn:  # fmt: skip
    """Fraction of the row's `program`'s trace (values of its statements, in order) the completion predicts; None
    (unscorable) where the program itself cannot be traced."""
    _check(None, isolation, timeout_s, memory_mb)
    from harness.sandbox import check_isolation, run_many

    check_isolation(isolation)
    limits = _limits(timeout_s, memory_mb)
    traces: dict[str, list[str] | str] = {}  # program -> its trace, or why it has none

    def reward(completions: list[str], program: list[str], log_extra=None, **_) -> list[float | None]:
        new = sorted(set(program) - set(traces))
        jobs = [trace_job(p) for p in new]
        outcomes = run_many([j | {"limits": limits, "isolation": isolation} for j, _ in jobs], workers or None)
        for p, (_, nonce), outcome in zip(new, jobs, outcomes, strict=True):
            line = next((x for x in outcome.stdout.splitlines() if x.startswith(nonce)), None)
            traces[p] = (
                json.loads(line[len(nonce) :]) if line else f"program not traced: {outcome.reason or 'no result'}"
            )
        scores, reasons = [], []
        for completion, p in zip(completions, program, strict=True):
            gold = traces[p]
            if isinstance(gold, str):
                scores.append(None)
                reasons.append(gold)
                continue
            scores.append(trace_score(predicted(completion), gold))
            reasons.append(f"{round(scores[-1] * len(gold))}/{len(gold)}")
        _report(log_extra, reasons)
        return scores

    reward.isolation = isolation
    return reward
