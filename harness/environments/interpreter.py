"""A code interpreter: the model writes Python between call tags, the environment runs it in the sandbox
(harness/sandbox.py: bubblewrap namespaces, no network, no host path, resource limits) and answers with what it
printed. ReTool's protocol by default:

    model:        <code>print(sum(range(1, 101)))</code>     a call, ending the turn ("</code>" is the stop string);
                                                             a ```python fence inside it is taken off
    environment:  <interpreter>5050</interpreter>            its stdout (the last `max_output_chars` of it), or the
                                                             last line of its error, "timeout" past the wall limit
    model:        ... \\boxed{5050}                          a turn without a call ends the episode

With `persist` (the default) the session keeps its state as a notebook does: each call runs after the earlier calls
that ran cleanly, their output silenced, so a name defined in one call is there in the next (each run is a fresh
sandbox: the cost grows with the calls, bounded by the turn limit). The episode's reward is 1 when the final turn's
answer (its last \\boxed{...}, else its last number: harness.grader) equals the row's `answer`, else 0; an
invalid call (no code, or a program that fails) also earns the per-turn reward -invalid_penalty. A sandbox that
cannot isolate here stops the stage with the reason (IsolationUnavailable), unless the weak mode is asked for by name.
"""

from __future__ import annotations

import re
from functools import partial

from harness.environments import Turn, register_environment, without_eos

FENCE = re.compile(r"^\s*```(?:python|py)?\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)
SILENCED = "import contextlib as _c, io as _io\nwith _c.redirect_stdout(_io.StringIO()):\n"


def code_of(text: str) -> str:
    """The program in a call's text, a markdown fence taken off.

    >>> code_of("```python\\nprint(1)\\n```"), code_of("x = 2\\nprint(x)")
    ('print(1)', 'x = 2\\nprint(x)')
    """
    fenced = FENCE.match(text)
    return (fenced.group(1) if fenced else text).strip("\n")


def program(earlier: list[str], code: str) -> str:
    """The program a call runs: the earlier clean calls, their output silenced, then this one.

    >>> print(program(["x = 2", "print(x)"], "print(x + 1)"))
    import contextlib as _c, io as _io
    with _c.redirect_stdout(_io.StringIO()):
        exec(compile('x = 2', '<cell 0>', 'exec'))
        exec(compile('print(x)', '<cell 1>', 'exec'))
    print(x + 1)
    """
    if not earlier:
        return code
    cells = "".join(f"    exec(compile({c!r}, '<cell {i}>', 'exec'))\n" for i, c in enumerate(earlier))
    return SILENCED + cells + code


class Interpreter:
    """One episode's interpreter session."""

    slow_steps = True
    """A call waits on a sandboxed process: the episode loop steps a turn's sessions in threads."""

    def __init__(self, call: tuple[str, str], result: tuple[str, str], persist: bool, max_output_chars: int,
                 invalid_penalty: float, limits, isolation: str) -> None:  # fmt: skip
        self.call, self.result, self.persist = call, result, persist
        self.max_output_chars, self.invalid_penalty = max_output_chars, invalid_penalty
        self.limits, self.isolation = limits, isolation
        self.stop = (call[1],)

    def reset(self, row: dict) -> None:
        self.gold = str(row["answer"])
        self.cells: list[str] = []
        self.final: str | None = None
        self.turns = self.tool_calls = self.invalid_calls = 0

    def step(self, text: str) -> Turn:
        from harness import sandbox

        self.turns += 1
        text = without_eos(text)
        opening, closing = self.call
        if not text.rstrip().endswith(closing):
            self.final = text
            return Turn(None, done=True)
        self.tool_calls += 1
        body = text.rstrip()[: -len(closing)]
        start = body.rfind(opening)
        code = code_of(body[start + len(opening) :]) if start >= 0 else ""
        if not code.strip():
            return self._invalid("no code")
        out = sandbox.run(program(self.cells if self.persist else [], code), limits=self.limits,
                          isolation=self.isolation)  # fmt: skip
        if out.status == "timeout":
            return self._invalid("timeout")
        if not out.ok:
            lines = out.stderr.strip().splitlines()
            return self._invalid(lines[-1] if lines else out.status)
        self.cells.append(code)
        return Turn(self._shown(out.stdout), done=False, tool_call=True)

    def _shown(self, output: str) -> str:
        output = output.rstrip()
        output = output[-self.max_output_chars :] if len(output) > self.max_output_chars else output
        return f"{self.result[0]}{output}{self.result[1]}"

    def _invalid(self, why: str) -> Turn:
        self.invalid_calls += 1
        return Turn(self._shown(why), done=False, tool_call=True, invalid=True, reward=-self.invalid_penalty)

    def reward(self) -> float:
        from harness.grader import is_correct

        return float(self.final is not None and is_correct(self.final, self.gold))

    def stats(self) -> dict[str, float]:
        return {"success": self.reward(), "tool_calls": self.tool_calls, "invalid_calls": self.invalid_calls,
                "turns": self.turns}  # fmt: skip


def _check(call: list[str] | None = None, result: list[str] | None = None, persist: bool = True,
           max_output_chars: int = 1024, invalid_penalty: float = 0.0, wall_s: float = 10.0, cpu_s: int = 10,
           memory_mb: int = 1024, isolation: str = "bubblewrap") -> None:  # fmt: skip
    from harness.sandbox import ISOLATIONS

    for name, pair in (("call", call), ("result", result)):
        if pair is not None and (len(pair) != 2 or not all(isinstance(t, str) and t for t in pair)):
            raise ValueError(f"{name}: [opening, closing], two non-empty texts, got {pair!r}")
    if not 16 <= max_output_chars <= 65536:
        raise ValueError(f"max_output_chars: in 16..65536, got {max_output_chars}")
    if not 0 <= invalid_penalty <= 1:
        raise ValueError(f"invalid_penalty: in [0, 1], got {invalid_penalty}")
    if not (0 < wall_s <= 300 and 1 <= cpu_s <= 300 and 64 <= memory_mb <= 65536):
        raise ValueError(f"limits: wall_s in (0, 300], cpu_s in 1..300, memory_mb in 64..65536; got {wall_s}, "
                         f"{cpu_s}, {memory_mb}")  # fmt: skip
    if isolation not in ISOLATIONS:
        raise ValueError(f"isolation: one of {', '.join(ISOLATIONS)}, got {isolation!r}")


@register_environment("interpreter", needs_labels=True, validate=_check)
def interpreter(call: list[str] | None = None, result: list[str] | None = None, persist: bool = True,
                max_output_chars: int = 1024, invalid_penalty: float = 0.0, wall_s: float = 10.0, cpu_s: int = 10,
                memory_mb: int = 1024, isolation: str = "bubblewrap") -> partial[Interpreter]:  # fmt: skip
    """Episodes with a Python interpreter run in the sandbox, scored by the final answer against the row's
    `answer`. The isolation is checked here, once: a machine that cannot isolate stops before the first episode."""
    from harness.sandbox import Limits, check_isolation

    _check(call, result, persist, max_output_chars, invalid_penalty, wall_s, cpu_s, memory_mb, isolation)
    check_isolation(isolation)
    limits = Limits(wall_s=wall_s, cpu_s=cpu_s, memory_mb=memory_mb)
    return partial(Interpreter, tuple(call or ("<code>", "</code>")), tuple(result or ("<interpreter>", "</interpreter>")),
                   persist, max_output_chars, invalid_penalty, limits, isolation)  # fmt: skip
