"""The trace world (harness/world/traces.py) and the white-box `execution_trace` reward (harness/rewards/trace.py):
the tracer, run in the sandbox, agrees with the generator; partial traces earn partial credit; a program that cannot
be traced leaves its rows unscored; a real GRPO step reads the reward."""

from __future__ import annotations

import datasets
import pytest

from harness.config.schema import Stage
from harness.config.stage import ObjectiveConfig, RewardSpec
from harness.rewards import REWARDS
from harness.stages.grpo import sandbox_record
from harness.world.splits import read_split
from harness.world.traces import TraceSpec, make_splits
from tests.conftest import build_trainer, debian_package


@pytest.fixture(scope="module", autouse=True)
def bubblewrap():
    debian_package("bubblewrap", "/usr/bin/bwrap", "the trace reward tests")


def traced(completions, programs):
    logged = {}
    reward = REWARDS.get("execution_trace").build(timeout_s=3.0)
    scores = reward(completions, program=programs, log_extra=lambda k, v: logged.__setitem__(k, v))
    return scores, logged["sandbox"]


def test_splits_are_disjoint_deterministic_and_in_range():
    spec = TraceSpec(n_train=50, n_pool=50, n_test=50, n_pretrain=200)
    splits = make_splits(spec)
    assert splits == make_splits(spec)
    programs = [r["program"] for rows in splits.values() for r in rows]
    assert len(programs) == len(set(programs)) == 350
    for row in splits["test"]:
        values = [int(v) for v in row["solution"].split(";")]
        assert row["answer"] == str(values[-1]) and all(0 <= v <= spec.max_value for v in values)
        assert row["prompt"] == row["program"].strip().replace("\n", ";") + "#"
    with pytest.raises(ValueError, match="max_statements"):
        make_splits(TraceSpec(max_statements=5))


def test_the_sandboxed_tracer_agrees_with_the_generator():
    rows = make_splits(TraceSpec(n_train=40, n_pool=1, n_test=1, n_pretrain=1))["train"]
    scores, reasons = traced([r["solution"] for r in rows], [r["program"] for r in rows])
    assert scores == [1.0] * len(rows), [(r["program"], why) for r, why in zip(rows, reasons, strict=True)]


def test_partial_traces_earn_partial_credit_by_hand():
    program = "a=7\nb=a+3\nc=b*2\nprint(c-a)\n"  # trace 7;10;20;13
    completions = ["7;10;20;13", "7;10;21;13", "7;10", "7;10;20;13;0", "13", "reasoning first\n7;10;20;13"]
    scores, reasons = traced(completions, [program] * len(completions))
    assert scores == [1.0, 0.75, 0.5, 0.8, 0.0, 1.0]
    assert reasons[:3] == ["4/4", "3/4", "2/4"]


def test_the_tracer_follows_any_python_not_only_straight_lines():
    program = "x = 1\nfor i in range(2):\n    x = x * 3\nprint('done', x)\n"
    # x=1, i=0, x=3, i=1, x=9, then the printed words
    scores, _ = traced(["1;0;3;1;9;done;9", "1;3;9;9"], [program] * 2)
    assert scores == [1.0, 1 / 7]


def test_an_untraceable_or_hostile_program_leaves_its_rows_unscored(tmp_path):
    target = tmp_path / "written"
    programs = ["while True:\n    pass\n", f"open({str(target)!r}, 'w').write('x')\n", "a=1\nprint(a)\n"]
    scores, reasons = traced(["1;1"] * 3, programs)
    assert scores[:2] == [None, None] and scores[2] == 1.0
    assert reasons[0].startswith("program not traced: timeout") and reasons[1].startswith("program not traced")
    assert not target.exists()


def test_a_real_grpo_step_reads_the_trace_reward(world, tmp_path):
    """The toy arithmetic model writes numbers: its completions are scored against a traced program's values."""
    root, _ = world
    rows = [r | {"program": f"a={r['answer']}\nprint(a)\n"} for r in read_split(root / "data", "train")]
    stage = Stage(kind="grpo", data="train", rewards=[RewardSpec(name="execution_trace")], objective=ObjectiveConfig(),
                  args=dict(learning_rate=0.1, max_steps=1, per_device_train_batch_size=8, num_generations=4,
                            max_completion_length=4, save_steps=100, logging_steps=1, optim="sgd"))  # fmt: skip
    trainer = build_trainer(stage, str(root / "model"), datasets.Dataset.from_list(rows), 0, tmp_path / "ckpt")
    trainer.train()
    logged = next(h for h in trainer.state.log_history if "rewards/execution_trace/mean" in h)
    assert 0.0 <= logged["rewards/execution_trace/mean"] <= 1.0
    assert sandbox_record(stage) == {"execution_trace": "bubblewrap"}
