"""Online data filtering (harness/algorithms/filters.py, harness/stages/trainers/online.py): the filters' formulas,
the refill of a batch worked by hand, and a real TRL training loop that is killed and resumed."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from harness.algorithms import ONLINE_FILTERS
from harness.config.errors import ConfigError
from harness.config.schema import Stage
from harness.config.stage import ObjectiveConfig, PieceSpec, RewardSpec
from harness.stages.trainers.online import OnlineFilter, concat, prompt_key, select
from tests.conftest import Crash, crash_after, run_stage, write_bundle

NAN = float("nan")


def test_varied_groups_keeps_groups_whose_scorable_rewards_differ():
    f = ONLINE_FILTERS.get("varied_groups")(min_spread=0.4)
    rewards = torch.tensor([[0.0, 0.5], [0.0, 1.0], [1.0, 1.0], [NAN, 1.0], [NAN, NAN], [0.0, 0.3]])
    # spreads: 0.5, 1.0, 0.0, 0.0 (one scorable), 0.0 (none), 0.3 (not above 0.4)
    assert f.keep(rewards).tolist() == [True, True, False, False, False, False]
    assert ONLINE_FILTERS.get("varied_groups")().keep(torch.tensor([[0.0, 0.5]])).tolist() == [True]


def test_pass_rate_band_keeps_groups_whose_mean_lies_in_the_band():
    f = ONLINE_FILTERS.get("pass_rate_band")(low=0.25, high=0.5)
    rewards = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0], [NAN, 1.0, 0.0, 0.0]])
    # means: 0.25, 0.5, 0.75, 1/3 (NaN left out)
    assert f.keep(rewards).tolist() == [True, True, False, True]


@pytest.mark.parametrize("args", [{"low": 0.8, "high": 0.2}, {"max_rounds": -1}, {"min_spread": -0.1}])
def test_bad_filter_arguments_are_refused(args):
    name = "varied_groups" if "min_spread" in args else "pass_rate_band"
    with pytest.raises(ValueError):
        ONLINE_FILTERS.get(name)(**args)


def test_concat_pads_prompts_left_and_completions_right_then_select_picks_samples():
    a = {"prompt_ids": torch.tensor([[5, 6]]), "prompt_mask": torch.tensor([[1, 1]]),
         "completion_ids": torch.tensor([[7]]), "completion_mask": torch.tensor([[1]]),
         "advantages": torch.tensor([0.5]), "num_items_in_batch": torch.tensor(1), "texts": ["a"]}  # fmt: skip
    b = {"prompt_ids": torch.tensor([[8], [9]]), "prompt_mask": torch.tensor([[1], [1]]),
         "completion_ids": torch.tensor([[1, 2, 3], [4, 0, 0]]), "completion_mask": torch.tensor([[1, 1, 1], [1, 0, 0]]),
         "advantages": torch.tensor([1.0, -1.0]), "num_items_in_batch": torch.tensor(4), "texts": ["b", "c"]}  # fmt: skip
    both = concat([a, b], pad_id=0)
    assert both["prompt_ids"].tolist() == [[5, 6], [0, 8], [0, 9]]
    assert both["prompt_mask"].tolist() == [[1, 1], [0, 1], [0, 1]]
    assert both["completion_ids"].tolist() == [[7, 0, 0], [1, 2, 3], [4, 0, 0]]
    assert both["completion_mask"].tolist() == [[1, 0, 0], [1, 1, 1], [1, 0, 0]]
    assert both["advantages"].tolist() == [0.5, 1.0, -1.0] and both["texts"] == ["a", "b", "c"]
    picked = select(both, torch.tensor([2, 0]))
    assert picked["completion_ids"].tolist() == [[4, 0, 0], [7, 0, 0]] and picked["texts"] == ["c", "a"]
    assert picked["advantages"].tolist() == [-1.0, 0.5]


class ScriptedTrainer:
    """What OnlineFilter.batch reads of the trainer, with rewards scripted per prompt (a group's rewards are the
    script's list for its prompt, the same on every visit) and one sample's 'completion' its prompt id."""

    def __init__(self, script: dict[int, list[float]]):
        self.script, self.calls = script, []
        self.state = SimpleNamespace(global_step=7)
        self.processing_class = SimpleNamespace(pad_token_id=0)
        self.accelerator = SimpleNamespace(process_index=0, device="cpu", gather=lambda t: t)
        self._metrics = {"train": defaultdict(list)}

    def _scored(self, rows):
        self.calls.append([r["id"] for r in rows[::2]])
        self._last_rewards = torch.tensor([x for r in rows[::2] for x in self.script[r["id"]]])  # groups of 2
        ids = torch.tensor([[r["id"]] for r in rows])
        return {"prompt_ids": ids, "prompt_mask": torch.ones_like(ids), "completion_ids": ids,
                "completion_mask": torch.ones_like(ids), "advantages": torch.zeros(len(rows)),
                "num_items_in_batch": torch.tensor(len(rows))}  # fmt: skip


def test_a_batch_is_refilled_with_fresh_prompts_until_it_holds_only_varied_groups():
    """Groups of 2: prompts 0 and 1 come first, 0 all wrong (dropped), 1 varied (kept). Round 1 draws two fresh
    prompts by the seeded generator; the first varied one among them fills the batch."""
    dataset = [{"id": i, "prompt": f"p{i}"} for i in range(6)]
    script = {0: [0.0, 0.0], 1: [0.0, 1.0], 2: [1.0, 1.0], 3: [1.0, 0.0], 4: [0.0, 1.0], 5: [0.0, 0.0]}
    online = OnlineFilter(PieceSpec(name="varied_groups", args={"max_rounds": 3}), dataset, 2, seed=0)
    trainer = ScriptedTrainer(script)
    inputs = [dataset[0], dataset[0], dataset[1], dataset[1]]
    batch = online.batch(trainer, inputs)
    drawn = [[r["id"] for r in online.draw(7, k, 2)[::2]] for k in (1, 2, 3)]  # what each round draws
    assert trainer.calls[0] == [0, 1] and trainer.calls[1:] == drawn[: len(trainer.calls) - 1]
    varied = [g for call in trainer.calls[1:] for g in call if script[g][0] != script[g][1]]
    assert batch["prompt_ids"][:, 0].tolist() == [1, 1, varied[0], varied[0]]
    assert online.history == [[7, ["1", str(varied[0])]]]
    assert batch["num_items_in_batch"].item() == 4
    assert trainer._metrics["train"]["filter/kept"] == [2.0] and trainer._metrics["train"]["filter/topped_up"] == [0.0]
    assert trainer._metrics["train"]["filter/drawn"] == [2.0 * len(trainer.calls)]


def test_when_the_rounds_run_out_dropped_groups_top_the_batch_up():
    dataset = [{"id": i, "prompt": f"p{i}"} for i in range(3)]
    online = OnlineFilter(PieceSpec(name="varied_groups", args={"max_rounds": 1}), dataset, 2, seed=0)
    trainer = ScriptedTrainer({0: [0.0, 0.0], 1: [1.0, 1.0], 2: [0.0, 0.0]})
    batch = online.batch(trainer, [dataset[0], dataset[0], dataset[1], dataset[1]])
    assert len(trainer.calls) == 2  # one refill round, then give up
    assert batch["prompt_ids"][:, 0].tolist() == [0, 0, 1, 1]  # the first dropped groups, in order
    assert trainer._metrics["train"]["filter/topped_up"] == [2.0] and trainer._metrics["train"]["filter/rounds"] == [
        1.0
    ]


def test_skip_seen_passes_over_prompts_the_filter_dropped_last_time():
    dataset = [{"id": i, "prompt": f"p{i}"} for i in range(4)]
    online = OnlineFilter(PieceSpec(name="varied_groups", args={"skip_seen": True}), dataset, 2, seed=0)
    online.stats = {"0": [1.0, 1.0], "1": [1.0, 1.0], "2": [0.0, 1.0]}  # 0 and 1 dropped last time, 2 kept
    for step in range(5):
        assert {r["id"] for r in online.draw(step, 1, 2)} == {2, 3}
    assert sorted({r["id"] for r in online.draw(0, 1, 4)}) == [0, 1, 2, 3]  # nothing else left: drawn after all
    assert prompt_key({"prompt": "p"}) == prompt_key({"prompt": "p", "id": None}) != prompt_key({"prompt": "q"})


def test_replay_draws_the_hard_prompts_the_filter_kept_first():
    dataset = [{"id": i, "prompt": f"p{i}"} for i in range(6)]
    spec = PieceSpec(name="varied_groups", args={"replay_below": 0.6})
    online = OnlineFilter(spec, dataset, 2, seed=0)
    # kept with mean 0.5: 0 and 4 (hard, replayed); kept with mean 0.75 (not below 0.6): 5; dropped: 1 and 2
    online.stats = {"0": [0.0, 1.0], "1": [1.0, 1.0], "2": [0.0, 0.0], "4": [1.0, 0.0], "5": [0.5, 1.0]}
    for step in range(5):
        assert {r["id"] for r in online.draw(step, 1, 2)} == {0, 4} and online.replayed == 2
    third = [r["id"] for r in online.draw(3, 1, 3)[::2]]
    assert set(third[:2]) == {0, 4} and third[2] not in (0, 4)  # then fresh prompts, in the seeded order
    assert online.draw(3, 1, 1, exclude=frozenset({"0"}))[0]["id"] == 4  # this step's prompts are not replayed
    online.stats["4"] = [1.0, 1.0]  # its last group: all right, so no longer hard
    assert online.draw(3, 1, 1, exclude=frozenset({"0"}))[0]["id"] != 4


def test_a_refill_replays_a_hard_prompt_and_logs_it():
    """Prompts 0 (all wrong: dropped) and 1 (varied: kept) come first; prompt 3 was kept before with mean 0.5, so the
    refill draws it first. Prompt 1, now also hard, is this step's own and is not drawn again."""
    dataset = [{"id": i, "prompt": f"p{i}"} for i in range(6)]
    script = {0: [0.0, 0.0], 1: [0.0, 1.0], 2: [1.0, 1.0], 3: [1.0, 0.0], 4: [1.0, 1.0], 5: [0.0, 0.0]}
    online = OnlineFilter(PieceSpec(name="varied_groups", args={"replay_below": 0.6}), dataset, 2, seed=0)
    online.stats = {"3": [0.0, 1.0]}
    trainer = ScriptedTrainer(script)
    batch = online.batch(trainer, [dataset[0], dataset[0], dataset[1], dataset[1]])
    assert trainer.calls[0] == [0, 1] and trainer.calls[1][0] == 3 and 1 not in trainer.calls[1]
    assert batch["prompt_ids"][:, 0].tolist() == [1, 1, 3, 3]
    assert trainer._metrics["train"]["filter/replayed"] == [1.0]
    with pytest.raises(ValueError, match="replay_below"):
        ONLINE_FILTERS.get("pass_rate_band")(replay_below="hard")


def test_an_online_filter_cannot_be_combined_with_paired_prompts(tmp_path):
    from harness.config.load import load_paper

    write_bundle(tmp_path, "f", """
paper: {title: filtered}
variants:
  base: {}
  dapo:
    stages: [{kind: grpo, data: train, rewards: [{name: exact_match}], data_args: {paraphrase: true},
              objective: {online_filter: {name: varied_groups}}}]
scales: {toy: {}}
""")  # fmt: skip
    with pytest.raises(ConfigError, match=r"variants\.dapo\.stages\.0\.objective\.online_filter: an online filter"):
        load_paper("f", "toy", papers_dir=tmp_path)
    (tmp_path / "f/paper.yaml").write_text((tmp_path / "f/paper.yaml").read_text().replace(
        "data_args: {paraphrase: true}", "data_args: {}").replace("{name: varied_groups}",
        "{name: pass_rate_band, args: {low: 0.9, high: 0.1}}"))  # fmt: skip
    with pytest.raises(ConfigError, match=r"online_filter\.args: low, high: 0 <= low <= high <= 1"):
        load_paper("f", "toy", papers_dir=tmp_path)


def test_the_filter_trains_in_a_real_grpo_loop_and_resumes_with_the_same_kept_prompts(world, tmp_path, monkeypatch):
    """Four GRPO steps with DAPO's dynamic sampling on the toy world, killed after step 3 and resumed from the step-2
    checkpoint: the record of prompts trained on, and the per-prompt statistics, equal an uninterrupted run's."""
    root, dataset = world
    args = dict(learning_rate=1e-2, max_steps=4, per_device_train_batch_size=8, num_generations=4,
                max_completion_length=4, save_steps=2, logging_steps=1)  # fmt: skip
    st = Stage(kind="grpo", data="train", rewards=[RewardSpec(name="format")], args=args,
               objective=ObjectiveConfig(online_filter=PieceSpec(name="varied_groups", args={"max_rounds": 2})))  # fmt: skip

    crash_after(monkeypatch, 3)
    with pytest.raises(Crash):
        run_stage(st, str(root / "model"), dataset, root / "data", 0, tmp_path / "r", "fp")
    early = json.loads((tmp_path / "r/checkpoints/checkpoint-2/online_filter.0.json").read_text())
    assert [h[0] for h in early["history"]] == [0, 1] and all(len(h[1]) == 2 for h in early["history"])
    monkeypatch.undo()
    summary = run_stage(st, str(root / "model"), dataset, root / "data", 0, tmp_path / "r", "fp")
    assert summary["resumed_from"].endswith("checkpoint-2")
    run_stage(st, str(root / "model"), dataset, root / "data", 0, tmp_path / "s", "fp")
    resumed, straight = (json.loads((tmp_path / d / "checkpoints/checkpoint-4/online_filter.0.json").read_text())
                         for d in ("r", "s"))  # fmt: skip
    assert [h[0] for h in straight["history"]] == [0, 1, 2, 3]
    assert resumed == straight
    history = json.loads((tmp_path / "s/train.json").read_text())["log_history"]
    logged = [e for e in history if "filter/drawn" in e]
    assert len(logged) == 4  # every step drew at least its 2 groups, at most 3 rounds of them, and kept at most 2
    assert all(2 <= e["filter/drawn"] <= 6 and 0 <= e["filter/kept"] <= 2 for e in logged)
    assert all(e["filter/kept"] + e["filter/topped_up"] == 2 for e in logged)
    assert any(e["filter/drawn"] > 2 for e in logged)  # a refill happened, and the resumed run drew the same


DIST_SCRIPT = {0: [0.0, 1.0], 1: [1.0, 0.0], 2: [1.0, 1.0], 3: [0.0, 0.0], 4: [0.0, 1.0], 5: [1.0, 0.0],
               6: [0.0, 1.0], 7: [1.0, 0.0], 8: [0.0, 1.0], 9: [0.0, 1.0]}  # fmt: skip


def dist_worker(out_dir: str) -> None:
    """In each of two real processes: rank 0 holds two varied groups (full at once), rank 1 two uniform ones."""
    from accelerate import PartialState
    from accelerate.utils import gather

    state = PartialState(cpu=True)
    rank = state.process_index
    dataset = [{"id": i, "prompt": f"p{i}"} for i in range(10)]

    class Trainer(ScriptedTrainer):
        def _scored(self, rows):
            self.calls.append([r["id"] for r in rows[::2]])
            local = torch.tensor([x for r in rows[::2] for x in self.script[r["id"]]])
            self._last_rewards = gather(local)  # every process's rewards, in process order, as TRL gathers them
            ids = torch.tensor([[r["id"]] for r in rows])
            return {"prompt_ids": ids, "prompt_mask": torch.ones_like(ids), "completion_ids": ids,
                    "completion_mask": torch.ones_like(ids), "advantages": torch.zeros(len(rows))}  # fmt: skip

    trainer = Trainer(DIST_SCRIPT)
    trainer.accelerator = SimpleNamespace(process_index=rank, device="cpu", gather=gather)
    online = OnlineFilter(PieceSpec(name="varied_groups", args={"max_rounds": 4}), dataset, 2, seed=0, rank=rank)
    first = [dataset[0], dataset[0], dataset[1], dataset[1]] if rank == 0 else [dataset[2]] * 2 + [dataset[3]] * 2
    batch = online.batch(trainer, first)
    online.save(Path(out_dir))
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps({
        "calls": trainer.calls, "kept": batch["prompt_ids"][:, 0].tolist(),
        "items": batch["num_items_in_batch"].item(), "metrics": dict(trainer._metrics["train"])}))  # fmt: skip
    state.wait_for_everyone()
    state.destroy_process_group()  # gloo aborts at exit when a peer has gone first


def test_every_process_refills_for_as_many_rounds_as_the_shortest_one_needs(tmp_path):
    """Generation is collective: rank 0, full at once, generates (and discards) as many rounds as rank 1 needs."""
    from tests.conftest import run_ranks

    run_ranks(f"from tests.test_online_filter import dist_worker; dist_worker({str(tmp_path)!r})", 2)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert len(r0["calls"]) == len(r1["calls"]) > 1
    assert r0["kept"] == [0, 0, 1, 1]  # its own first groups, both varied
    varied = [g for call in r1["calls"][1:] for g in call if DIST_SCRIPT[g][0] != DIST_SCRIPT[g][1]]
    assert r1["kept"] == [varied[0], varied[0], varied[1], varied[1]]
    assert r0["items"] == r1["items"] == 8  # completion tokens of the kept batch, over both processes
    assert r0["metrics"]["filter/kept"] == r1["metrics"]["filter/kept"] == [4.0]  # summed over processes
    assert (tmp_path / "online_filter.0.json").is_file() and (tmp_path / "online_filter.1.json").is_file()
    assert json.loads((tmp_path / "online_filter.1.json").read_text())["history"][0][1] == [str(g) for g in varied[:2]]
