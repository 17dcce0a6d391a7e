"""unit_tests and sql_match: hand-checked scores, hostile programs scored 0 with a reason, a real GRPO step.

Needs bubblewrap (tests/test_sandbox.py installs it when we are root; else skipped with that reason)."""

from __future__ import annotations

import hashlib
import sqlite3

import datasets
import pytest

from harness.config.schema import Stage
from harness.config.stage import ObjectiveConfig, RewardSpec
from harness.rewards import REWARDS
from harness.stages.grpo import sandbox_record
from harness.world.splits import read_split
from tests.conftest import build_trainer, debian_package

ADD = [["assert add(2, 3) == 5", "assert add(-1, 1) == 0", "assert add(0, 0) == 0"]]


@pytest.fixture(scope="module", autouse=True)
def bubblewrap():
    debian_package("bubblewrap", "/usr/bin/bwrap", "the code-reward tests")


def scored(reward, completions, **columns):
    logged = {}
    scores = reward(completions, log_extra=lambda k, v: logged.__setitem__(k, v), **columns)
    return scores, logged["sandbox"]


def test_unit_tests_scores_the_fraction_passed_or_all_or_nothing():
    programs = ["```python\ndef add(a, b):\n    return a + b\n```", "def add(a, b):\n    return a - b", "def add(a, b"]
    fraction, reasons = scored(REWARDS.get("unit_tests").build(), programs, tests=ADD * 3)
    assert fraction == [1.0, 1 / 3, 0.0]  # a - b: 2 - 3 != 5, -1 - 1 != 0, 0 - 0 == 0
    assert reasons == ["3/3", "1/3", "program raised SyntaxError"]
    strict, _ = scored(REWARDS.get("unit_tests").build(mode="all"), programs, tests=ADD * 3)
    assert strict == [1.0, 0.0, 0.0]


def test_stdin_stdout_tests_are_compared_outside_the_sandbox():
    tests = [[{"input": "2 3", "output": "5"}, {"input": "10 -4", "output": "6"}]] * 3
    programs = ["print(sum(map(int, input().split())))", "print(5)", "import sys\nsys.exit(0)"]
    scores, reasons = scored(REWARDS.get("unit_tests").build(), programs, tests=tests)
    assert scores == [1.0, 0.5, 0.0] and reasons == ["2/2", "1/2", "0/2"]


def test_a_program_that_exits_early_or_prints_verdicts_does_not_pass():
    forged = [
        "import os\nos._exit(0)",
        "print('0:pass')\nprint('1:pass')\nprint('2:pass')",
        "import sys\nfor i in range(3): sys.stdout.write(f'x:{i}:pass\\n')\nraise SystemExit(0)",
    ]
    scores, _ = scored(REWARDS.get("unit_tests").build(), forged, tests=ADD * 3)
    assert scores == [0.0, 0.0, 0.0]


def test_hostile_programs_score_zero_with_a_reason_and_a_legit_one_still_passes():
    hostile = {
        "socket": "import socket\nsocket.create_connection(('127.0.0.1', 22), timeout=1)",
        "fork bomb": "import os\nwhile True:\n    os.fork()",
        "memory bomb": "x = bytearray(8 * 1024**3)",
        "infinite loop": "while True:\n    pass",
        "huge stdout": "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)",
        "delete files": "import shutil\nshutil.rmtree('/usr')",
    }
    legit = "def add(a, b):\n    return a + b"
    reward = REWARDS.get("unit_tests").build(timeout_s=2.0)
    programs = [p + "\n" + legit for p in hostile.values()] + [legit]
    scores, reasons = scored(reward, programs, tests=ADD * len(programs))
    assert scores == [0.0] * len(hostile) + [1.0], dict(zip([*hostile, "legit"], reasons, strict=True))
    assert all(r and r != "0/3" for r in reasons[:-1]), reasons  # each says why


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "shop.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE items (name TEXT, price INTEGER)")
        db.executemany("INSERT INTO items VALUES (?, ?)", [("pen", 2), ("cup", 5), ("mug", 5)])
    return str(path)


def test_sql_match_compares_result_sets_and_cannot_change_the_database(database):
    gold = "SELECT name FROM items WHERE price = 5"
    queries = [
        "SELECT name FROM items WHERE price > 4",  # same set
        "```sql\nSELECT name FROM items WHERE price = 5 ORDER BY name DESC\n```",  # same set, other order
        "SELECT name FROM items",  # more rows
        "DROP TABLE items",
        "DELETE FROM items",
        "ATTACH DATABASE '/tmp/x.sqlite' AS x",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
        "SELEC name FROM items",
    ]
    before = hashlib.sha256(open(database, "rb").read()).hexdigest()
    scores, reasons = scored(REWARDS.get("sql_match").build(timeout_s=2.0), queries, answer=[gold] * len(queries),
                             database=[database] * len(queries))  # fmt: skip
    assert scores == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], reasons
    assert reasons[:3] == ["match", "match", "different rows"]
    # one process ran the whole group: the runaway query was interrupted alone, the others were scored
    assert "readonly" in reasons[3] and reasons[6] == "OperationalError: interrupted" and "syntax error" in reasons[7]
    assert hashlib.sha256(open(database, "rb").read()).hexdigest() == before
    ordered, _ = scored(REWARDS.get("sql_match").build(ordered=True), queries[:2], answer=[gold + " ORDER BY name"] * 2,
                        database=[database] * 2)  # fmt: skip
    assert ordered == [1.0, 0.0]  # table order is cup, mug (as gold's ORDER BY name); DESC gives mug, cup


def test_a_query_cannot_change_what_the_next_query_of_its_group_sees():
    script = "CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1), (2), (3);"
    queries = ["PRAGMA query_only = OFF", "DROP TABLE t", "DELETE FROM t", "SELECT a FROM t WHERE a > 1"]
    scores, reasons = scored(REWARDS.get("sql_match").build(), queries, answer=["SELECT a FROM t WHERE a >= 2"] * 4,
                             database=[script] * 4)  # fmt: skip
    assert scores == [0.0, 0.0, 0.0, 1.0], reasons
    assert "readonly" in reasons[1] and "readonly" in reasons[2]


def test_a_gold_query_that_fails_leaves_its_row_unscored(database):
    scores, reasons = scored(REWARDS.get("sql_match").build(), ["SELECT 1", "SELECT name FROM items"],
                             answer=["SELECT nope FROM items", "SELECT name FROM items"], database=[database] * 2)  # fmt: skip
    assert scores == [None, 1.0] and reasons[0].startswith("gold query fails: OperationalError")


def test_a_database_given_as_sql_text_is_built_in_the_sandbox():
    script = "CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1), (2), (3);"
    scores, _ = scored(REWARDS.get("sql_match").build(), ["SELECT a FROM t WHERE a > 1", "SELECT a FROM t"],
                       answer=["SELECT a FROM t WHERE a >= 2"] * 2, database=[script] * 2)  # fmt: skip
    assert scores == [1.0, 0.0]


def test_config_time_checks_name_the_bad_argument():
    factory = REWARDS.get("unit_tests")
    assert factory.args_problem({"mode": "most"})[1].startswith("mode must be")
    assert "isolation must be one of bubblewrap, weak-rlimits-only" in factory.args_problem({"isolation": "none"})[1]
    assert factory.args_problem({"isolation": "weak-rlimits-only", "timeout_s": 2.0}) is None


def test_a_real_grpo_step_scores_completions_in_the_sandbox(world, tmp_path):
    """The toy model writes digit strings: a valid Python expression passes `assert True`, garbage does not."""
    root, _ = world
    rows = [r | {"tests": ["assert True"]} for r in read_split(root / "data", "train")]
    stage = Stage(kind="grpo", data="train", rewards=[RewardSpec(name="unit_tests")], objective=ObjectiveConfig(),
                  args=dict(learning_rate=0.1, max_steps=1, per_device_train_batch_size=8, num_generations=4,
                            max_completion_length=4, save_steps=100, logging_steps=1, optim="sgd"))  # fmt: skip
    trainer = build_trainer(stage, str(root / "model"), datasets.Dataset.from_list(rows), 0, tmp_path / "ckpt")
    trainer.train()
    logged = next(h for h in trainer.state.log_history if "rewards/unit_tests/mean" in h)
    assert 0.0 <= logged["rewards/unit_tests/mean"] <= 1.0
    assert sandbox_record(stage) == {"unit_tests": "bubblewrap"}


def test_with_prepend_prompt_the_program_is_the_prompt_and_the_completion():
    from harness.world.programs import ProgramSpec, make_splits

    rows = make_splits(ProgramSpec(n_train=3, n_pool=1, n_test=1, n_pretrain=1))["train"]
    reward = REWARDS.get("unit_tests").build(prepend_prompt=True)
    completions = [rows[0]["answer"], rows[1]["answer"] + "+1", "x)"]
    scores, _ = scored(reward, completions, tests=[r["tests"] for r in rows], prompts=[r["prompt"] for r in rows])
    assert scores == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="plain-text prompts"):
        reward(["x"], tests=[rows[0]["tests"]], prompts=[[{"role": "user", "content": "hi"}]])
