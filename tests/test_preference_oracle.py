"""General preferences: the pairwise oracle is a consistent but intransitive preference, and as a generate
stage's judge it scores every sample by its win-rate and pairs the most-winning with the least-winning."""

from __future__ import annotations

import json
import random

import pytest

from harness.config.schema import Stage
from harness.config.stage import RewardSpec
from harness.rewards import REWARDS
from harness.rewards import preference_oracle as oracle
from tests.conftest import run_stage


def test_the_preference_is_complementary_and_cyclic():
    prefer = oracle.PREFERENCES.get("right_then_cyclic")
    rng = random.Random(0)
    texts = ["5", "x", ""] + [str(rng.randint(0, 30)) for _ in range(30)]
    for a in texts:
        for b in texts:
            assert prefer(a, b, "5") + prefer(b, a, "5") == pytest.approx(1.0)
    assert prefer("7", "6", "5") == prefer("8", "7", "5") == prefer("6", "8", "5") == 1.0  # 7 > 6 > 8 > 7
    # so no per-sample score s can have s(7) > s(6) > s(8) > s(7): a Bradley-Terry model cannot fit it


def test_brpo_scores_each_completion_against_one_drawn_reference_of_its_group():
    reward = REWARDS.get("bootstrapped_winrate").build(preference="right_then_cyclic")
    completions, ids = ["5", "7", "8", "x"] * 2, [1] * 4 + [0] * 4
    # group 1 draws "8" (5 beats it; 7 - 8 = 2 mod 3: 7 loses; x has no number), group 0 draws the right "5"
    assert [completions[oracle.reference_index(completions[:4], k)] for k in (1, 0)] == ["8", "5"]
    assert reward(completions, id=ids, answer=["5"] * 8) == [1.0, 0.0, 0.5, 0.0, 0.5, 0.0, 0.0, 0.0]
    # the draw depends on the group only: the same on every call (every process, after a resume)
    assert reward(completions[4:] + completions[:4], id=ids[4:] + ids[:4], answer=["5"] * 8) == [
        0.5, 0.0, 0.0, 0.0, 1.0, 0.0, 0.5, 0.0]  # fmt: skip


def test_generate_with_the_oracle_pairs_by_win_rate(world, tmp_path):
    root, dataset = world
    args = dict(num_samples=4, temperature=1.0, max_new_tokens=4, max_prompts=16, batch_size=8,
                apply_chat_template=False, generation_engine="hf")  # fmt: skip
    judge = RewardSpec("pairwise_winrate", args={"preference": "right_then_cyclic"})
    st = Stage(kind="generate", data="train", rewards=[judge], args=args)
    run_stage(st, str(root / "model"), dataset, root / "data", 0, tmp_path, "fp")
    prefer = oracle.PREFERENCES.get("right_then_cyclic")
    samples = [json.loads(x) for x in (tmp_path / "samples.jsonl").read_text().splitlines()]
    for s in samples:  # win-rates recomputed pair by pair
        cs = s["completions"]
        want = [sum(prefer(cs[i], cs[j], s["answer"]) for j in range(4) if j != i) / 3 for i in range(4)]
        assert s["scores"] == pytest.approx(want)
    pairs = [json.loads(x) for x in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    by_id = {s["id"]: s for s in samples}
    assert pairs and all(p["chosen_score"] == max(by_id[p["id"]]["scores"]) for p in pairs)


def test_unknown_preference_is_refused_at_config_time(tmp_path):
    from tests.test_stage_config import refusal

    gen = {"kind": "generate", "rewards": [{"name": "pairwise_winrate", "args": {"preference": "right_then_cyclc"}}]}
    err = refusal(tmp_path, v={"stages": [gen]})
    assert err.key == "variants.v.stages.0.rewards.0.args" and "did you mean 'right_then_cyclic'" in str(err)
    assert REWARDS.get("pairwise_winrate").group_aware  # a score against the prompt's other samples
