"""PrefixRL's off-policy prefixes: data_args.solution_prefix moves the first steps of a row's reference solution
into its prompt (harness/stages/data.py solution_prefixes), and refuses where there is no solution to move."""

from __future__ import annotations

import datasets
import pytest

from harness.config.stage import DataArgs, data_args_problem
from harness.stages.data import solution_prefixes


def moved(rows: list[dict], share: float, separator: str | None = ";") -> list[tuple[str, str]]:
    out = solution_prefixes(datasets.Dataset.from_list(rows), share, separator)
    return [(r["prompt"], r["solution"]) for r in out]


def test_the_share_of_steps_rounds_down_and_never_takes_the_last_step():
    row = {"prompt": "1+2+3+4=", "solution": "3;6;10", "answer": "10"}  # three steps
    assert moved([row], 0.3) == [("1+2+3+4=", "3;6;10")]  # floor(0.9) = 0 steps
    assert moved([row], 0.34) == [("1+2+3+4=3;", "6;10")]  # floor(1.02) = 1
    assert moved([row], 0.67) == [("1+2+3+4=3;6;", "10")]  # floor(2.01) = 2
    assert moved([row], 1.0) == [("1+2+3+4=3;6;", "10")]  # 3 steps, capped at all but the last
    assert moved([{"prompt": "4+5=", "solution": "9"}], 1.0) == [("4+5=", "9")]  # one step: nothing to give


def test_the_default_separator_is_a_blank_line_and_other_columns_stay():
    row = {"prompt": "Q: ...\n", "solution": "First.\n\nThen.\n\nSo \\boxed{3}.", "answer": "3", "id": 7}
    out = solution_prefixes(datasets.Dataset.from_list([row]), 0.5, None)[0]
    assert out["prompt"] == "Q: ...\nFirst.\n\n" and out["solution"] == "Then.\n\nSo \\boxed{3}."
    assert out["answer"] == "3" and out["id"] == 7


def test_rows_without_a_solution_are_refused_by_name():
    with pytest.raises(ValueError, match="data_args.solution_prefix.*no reference solution"):
        solution_prefixes(datasets.Dataset.from_list([{"prompt": "1+1=", "answer": "2"}]), 0.5, ";")


@pytest.mark.parametrize(
    ("data", "args", "key"),
    [
        ("pool", DataArgs(solution_prefix=0.5), "solution_prefix"),  # no solutions in the unlabeled pool
        ("train", DataArgs(prefix_separator=";"), "prefix_separator"),  # a separator with nothing to cut
        ("train", DataArgs(solution_prefix=0.5, prefix_separator=""), "prefix_separator"),
    ],
)
def test_config_refusals(data, args, key):
    problem = data_args_problem(data, args)
    assert problem is not None and problem[0] == key, problem
    assert data_args_problem("train", DataArgs(solution_prefix=0.5, prefix_separator=";")) is None


@pytest.mark.parametrize("name", ["solution_prefix", "lowest_likelihood"])
def test_a_generate_stage_refuses_what_only_training_applies(name):
    from pathlib import Path

    from harness.config.checks import check_stage
    from harness.config.errors import ConfigError
    from harness.config.stage import RewardSpec, StageConfig

    st = StageConfig(kind="generate", rewards=[RewardSpec(name="exact_match")], data_args=DataArgs(**{name: 0.5}))
    with pytest.raises(ConfigError, match=f"stages.0.data_args.{name}: applied when a stage trains"):
        check_stage(st, Path("p.yaml"), "variants.v.stages.0")
    check_stage(StageConfig(kind="grpo", rewards=[RewardSpec(name="exact_match")], data_args=DataArgs(**{name: 0.5})),
                Path("p.yaml"), "variants.v.stages.0")  # fmt: skip
