"""across_processes on a real 2-process gloo group on CPU: each process holds half of every group,
as TRL gives it when the per-device batch is smaller than num_generations."""

from __future__ import annotations

import json
from pathlib import Path

from harness.rewards import REWARDS
from tests.conftest import run_ranks

WORLD = 2
# 4 groups of 4 completions; rank 0 holds the first two of each group, rank 1 the last two
GROUPS = {
    "g0": ["1", "2", "2", "3"],  # whole group votes 2; rank 0 alone would vote 1 (a tie, seen first)
    "g1": ["5", "6", "6", "6"],  # votes 6; rank 0 alone: 5
    "g2": ["7", "7", "8", "8"],  # votes 7; rank 1 alone: 8
    "g3": ["x", "4", "4", "9"],  # votes 4 either way
}
# refined_label: 3 visits of the same ids, every given label "8"; the whole group's 7 is stable and rising
# from visit 2, so the label flips there, while rank 0's half keeps voting for the given label
REFINE_STEPS = [
    {key: ["8", "7", "7", "9"] for key in GROUPS},
    {key: ["8", "7", "7", "7"] for key in GROUPS},
    {key: ["8", "7", "7", "8"] for key in GROUPS},
]


def local_batch(groups: dict[str, list[str]], rank: int) -> tuple[list[str], list[str]]:
    """This rank's half of every group: (completions, ids)."""
    half = slice(2 * rank, 2 * rank + 2)
    completions = [c for key in groups for c in groups[key][half]]
    return completions, [key for key in groups for _ in range(2)]


def full_batch(groups: dict[str, list[str]]) -> tuple[list[str], list[str]]:
    """The batch in process order: rank 0's slice, then rank 1's."""
    parts = [local_batch(groups, r) for r in range(WORLD)]
    return [c for p in parts for c in p[0]], [i for p in parts for i in p[1]]


def worker(out_dir: str) -> None:
    """Run in each spawned process: score with the wrapped rewards, write what came back."""
    from accelerate import PartialState

    from harness.rewards import across_processes

    state = PartialState(cpu=True)
    rank = state.process_index
    result = {"backend": state.backend, "num_processes": state.num_processes, "metrics": [], "extra": []}

    majority = across_processes(REWARDS.get("majority_vote").build())
    completions, ids = local_batch(GROUPS, rank)
    result["majority"] = majority(completions, id=ids, prompts=["p"] * len(ids), trainer_state=None)

    refined = across_processes(REWARDS.get("refined_label").build())
    result["refined"] = []
    for groups in REFINE_STEPS:
        completions, ids = local_batch(groups, rank)
        log = lambda name, value: result["metrics"].append([name, value])  # noqa: E731
        result["refined"].append(refined(completions, id=ids, answer=["8"] * len(ids), log_metric=log))
    result["refined_state"] = refined.state_dict()

    def echo(completions, log_extra, **_):  # logs a column for the whole gathered batch
        log_extra("seen", list(completions))
        return [0.0] * len(completions)

    completions, ids = local_batch(GROUPS, rank)
    across_processes(echo)(completions, id=ids, log_extra=lambda column, values: result["extra"].append(values))
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    state.wait_for_everyone()
    state.destroy_process_group()  # gloo aborts at exit when a peer has gone first


def run_two_processes(tmp_path: Path) -> list[dict]:
    run_ranks(f"from tests.test_rewards_distributed import worker; worker({str(tmp_path)!r})", WORLD)
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]


def test_across_processes_scores_groups_split_over_two_processes(tmp_path):
    ranks = run_two_processes(tmp_path)
    assert [r["backend"] for r in ranks] == ["gloo", "gloo"]
    assert [r["num_processes"] for r in ranks] == [2, 2]

    # majority_vote: the concatenated result is the single-process result on the whole batch ...
    fn = REWARDS.get("majority_vote").build()
    completions, ids = full_batch(GROUPS)
    expected = fn(completions, id=ids)
    assert expected == [0, 1, 0, 1, 1, 1, 0, 1] + [1, 0, 1, 1, 0, 0, 1, 0]  # by hand, in process order
    assert ranks[0]["majority"] + ranks[1]["majority"] == expected
    # ... and not what each process would compute from its half alone (the bug this guards against)
    alone = [x for r in range(WORLD) for x in fn(*local_batch(GROUPS, r)[:1], id=local_batch(GROUPS, r)[1])]
    assert alone != expected

    # refined_label: same outputs and same state on both processes as one process over the whole batches
    single, halves = REWARDS.get("refined_label").build(), [REWARDS.get("refined_label").build() for _ in ranks]
    for step, groups in enumerate(REFINE_STEPS):
        completions, ids = full_batch(groups)
        expected = single(completions, id=ids, answer=["8"] * len(ids))
        assert ranks[0]["refined"][step] + ranks[1]["refined"][step] == expected
        alone = []
        for r, obj in enumerate(halves):
            completions, ids = local_batch(groups, r)
            alone += obj(completions, id=ids, answer=["8"] * len(ids))
        # visit 1 scores against the given label either way; from visit 2 rank 0's half has missed the flip
        assert (alone != expected) is (step >= 1), step
    assert single.state_dict()["ids"]["g0"]["label"] == "7"  # flipped on the whole groups
    assert halves[0].state_dict()["ids"]["g0"]["label"] == "8"  # rank 0's half alone never flips
    assert ranks[0]["refined_state"] == ranks[1]["refined_state"] == single.state_dict()
    # the metric counts ids over the whole batch, the same on both processes
    assert ranks[0]["metrics"] == ranks[1]["metrics"] == [["refined_label/refined", v] for v in (0.0, 4.0, 4.0)]

    # log_extra receives only this process's slice (TRL gathers logged columns itself)
    assert [r["extra"] for r in ranks] == [[local_batch(GROUPS, r)[0]] for r in range(WORLD)]
