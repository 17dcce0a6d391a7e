"""The code-interpreter environment (harness/environments/interpreter.py): calls run in the real bubblewrap sandbox and
answer with their output; the session keeps its names across calls; errors, timeouts and empty calls are invalid
calls; a program sees neither the project, the secrets of the process, nor the network; an episode runs end to end
through the episode loop with ReTool's tags."""

from __future__ import annotations

import pytest

from harness.environments import ENVIRONMENTS
from harness.sandbox import bubblewrap_problem
from tests.conftest import CharTokenizer

pytestmark = pytest.mark.skipif(bubblewrap_problem() is not None, reason=f"no sandbox: {bubblewrap_problem()}")


def session(answer="42", **args):
    env = ENVIRONMENTS.get("interpreter").build(**args)()
    env.reset({"answer": answer})
    return env


def test_a_call_answers_with_its_output_and_the_boxed_answer_is_graded():
    env = session()
    assert env.stop == ("</code>",)
    turn = env.step("Let me compute.\n<code>\n```python\nprint(6 * 7)\n```\n</code>")
    assert (turn.observation, turn.done, turn.tool_call, turn.invalid) == ("<interpreter>42</interpreter>", False,
                                                                            True, False)  # fmt: skip
    assert env.step("So the answer is \\boxed{42}.<eos>").done and env.reward() == 1.0
    assert env.stats() == {"success": 1.0, "tool_calls": 1, "invalid_calls": 0, "turns": 2}
    wrong = session()
    wrong.step("\\boxed{41}")
    assert wrong.reward() == 0.0


def test_the_session_keeps_its_names_and_silences_earlier_output():
    env = session()
    assert env.step("<code>x = 40\nprint('set')</code>").observation == "<interpreter>set</interpreter>"
    assert env.step("<code>print(y)</code>").invalid  # a failing call is not replayed later
    assert env.step("<code>print(x + 2)</code>").observation == "<interpreter>42</interpreter>"  # no 'set' again
    fresh = session(persist=False)
    fresh.step("<code>x = 40</code>")
    assert "NameError: name 'x' is not defined" in fresh.step("<code>print(x)</code>").observation


def test_errors_timeouts_and_empty_calls_are_invalid_and_cost_the_penalty():
    env = session(invalid_penalty=0.25, wall_s=1.0, cpu_s=1)
    error = env.step("<code>1 / 0</code>")
    assert error.invalid and error.reward == -0.25
    assert error.observation == "<interpreter>ZeroDivisionError: division by zero</interpreter>"
    assert env.step("<code>while True:\n    pass</code>").observation == "<interpreter>timeout</interpreter>"
    assert env.step("<code>  </code>").observation == "<interpreter>no code</interpreter>"
    assert env.stats()["invalid_calls"] == 3
    long = session(max_output_chars=16).step("<code>print('a' * 100 + 'END')</code>").observation
    assert long == "<interpreter>" + ("a" * 100 + "END")[-16:] + "</interpreter>"


def test_a_program_sees_no_project_no_secret_and_no_network(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "tracking-secret")
    probe = (
        "import os, socket\n"
        "print(os.path.exists('/work'), os.path.exists('/root'), 'secret' in repr(dict(os.environ)))\n"
        "s = socket.socket()\n"
        "s.settimeout(2)\n"
        "try:\n"
        "    s.connect(('1.1.1.1', 53)); print('connected')\n"
        "except OSError as e:\n"
        "    print('no network')\n"
    )
    out = session().step(f"<code>{probe}</code>").observation
    assert out == "<interpreter>False False False\nno network</interpreter>", out


def test_an_episode_runs_through_the_episode_loop_with_retool_tags():
    """A scripted policy (one character per token) calls the interpreter once, then answers; the observation's
    tokens are the environment's."""
    from harness.environments.episodes import Sampler, run_episodes

    class Scripted(Sampler):
        turns = ["<code>print(sum(range(10)))</code>", "The sum is \\boxed{45}."]

        def sample(self, contexts, stops, max_new):
            n = len(self.__dict__.setdefault("seen", []))
            self.seen.append(stops)
            return [([ord(c) for c in self.turns[n]] + [0], None) for _ in contexts]

    make_env = ENVIRONMENTS.get("interpreter").build()
    sampler = Scripted()
    (episode,) = run_episodes(None, CharTokenizer(), ["Sum 0..9?"], [{"answer": "45"}], make_env, max_turns=4,
                              max_turn_tokens=64, max_tokens=400, sampler=sampler)  # fmt: skip
    assert sampler.seen == [("</code>",), ("</code>",)]
    environment = "".join(chr(t) for t, m in zip(episode.ids, episode.mask, strict=True) if m == 0)
    assert environment == "<interpreter>45</interpreter>" and episode.reward == 1.0
    assert episode.stats["tool_calls"] == 1 and episode.stats["success"] == 1.0


def test_a_turns_sessions_run_their_programs_side_by_side(monkeypatch):
    """The episode loop steps the sessions of one turn in threads (each call waits on its sandbox); every episode
    still gets its own program's output."""
    import threading

    from harness.environments.episodes import Sampler, run_episodes
    from harness.environments.interpreter import Interpreter

    class Squares(Sampler):
        def sample(self, contexts, stops, max_new):
            calls = [c for c in contexts if "<interpreter>" not in "".join(map(chr, c))]
            assert len(calls) in (0, len(contexts))
            turn = "<code>import time; time.sleep(0.2); print({n} * {n})</code>" if calls else "done"
            return [([ord(ch) for ch in turn.format(n=chr(c[0]))] + [0], None) for c in contexts]

    threads = set()
    step = Interpreter.step
    monkeypatch.setattr(Interpreter, "step", lambda self, text: threads.add(threading.get_ident()) or step(self, text))
    prompts = [str(n) for n in range(1, 7)]
    episodes = run_episodes(None, CharTokenizer(), prompts, [{"answer": "0"}] * 6, ENVIRONMENTS.get("interpreter").build(),
                            max_turns=2, max_turn_tokens=99, max_tokens=400, sampler=Squares())  # fmt: skip
    shown = ["".join(chr(t) for t, m in zip(e.ids, e.mask, strict=True) if m == 0) for e in episodes]
    assert shown == [f"<interpreter>{n * n}</interpreter>" for n in range(1, 7)]
    assert len(threads) > 1 and threading.get_ident() not in threads


@pytest.mark.parametrize(
    "args, fragment",
    [
        ({"call": ["<code>"]}, "call: [opening, closing]"),
        ({"max_output_chars": 4}, "max_output_chars"),
        ({"wall_s": 0}, "limits"),
        ({"isolation": "none"}, "isolation: one of bubblewrap, weak-rlimits-only"),
        ({"invalid_penalty": 2}, "invalid_penalty"),
    ],
)
def test_bad_arguments_are_refused_at_config_time(args, fragment):
    problem = ENVIRONMENTS.get("interpreter").args_problem(args)
    assert problem is not None and fragment in problem[1]
