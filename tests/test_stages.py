"""Each stage kind beyond GRPO/SFT in a tiny real run: generate, dpo (TRL's loss and ours), reward_model,
GRPO with a learned reward, GRPO with an expert mix."""

from __future__ import annotations

import json

import pytest
import torch

from harness.config.schema import Stage
from harness.config.stage import ObjectiveConfig, PieceSpec, RewardSpec
from harness.grader import is_correct
from harness.world.splits import read_split
from tests.conftest import build_trainer, run_stage
from tests.test_grpo import rows, train_once
from tests.test_grpo import stage as grpo

TINY = dict(max_steps=2, per_device_train_batch_size=4, save_steps=100, logging_steps=1, learning_rate=0.05)
JUDGE = [RewardSpec(name="exact_match"), RewardSpec(name="length", weight=0.1, args={"max_chars": 6})]


def generate(world, out, **args) -> dict:
    root, dataset = world
    a = dict(num_samples=4, temperature=1.0, max_new_tokens=4, max_prompts=24, batch_size=8,
             apply_chat_template=False, generation_engine="hf") | args  # fmt: skip
    st = Stage(kind="generate", data="train", rewards=JUDGE, args=a)
    return run_stage(st, str(root / "model"), dataset, root / "data", 0, out, "fp")


@pytest.fixture(scope="module")
def pairs(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("generate")
    summary = generate(world, out)
    return out, summary


def test_generate_labels_every_sample_with_the_judge_and_pairs_best_with_worst(world, pairs):
    root, _ = world
    out, summary = pairs
    gold = {r["id"]: r["answer"] for r in read_split(root / "data", "train")}
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 24 and all(len(s["completions"]) == 4 for s in samples)
    for s in samples:  # the score is recomputed here from the grader and the string length
        for c, score in zip(s["completions"], s["scores"], strict=True):
            expected = float(is_correct(c, gold[s["id"]])) + 0.1 * (1 - min(len(c), 6) / 6)
            assert score == pytest.approx(expected)
    rows = [json.loads(x) for x in (out / "pairs.jsonl").read_text().splitlines()]
    by_id = {s["id"]: s for s in samples}
    assert rows and summary["pairs"] == len(rows) and json.loads((out / "train.json").read_text())["kind"] == "generate"
    for p in rows:
        s = by_id[p["id"]]
        assert p["chosen_score"] == max(s["scores"]) > p["rejected_score"] == min(s["scores"])
        assert p["baseline"] == pytest.approx(sum(s["scores"]) / 4) and p["gold"] == gold[p["id"]]
    assert len(rows) == sum(max(s["scores"]) > min(s["scores"]) for s in samples)  # every prompt that can pair


def dpo_stage(preference_loss=None, **args) -> Stage:
    return Stage(kind="dpo", data="generated", rewards=[], preference_loss=preference_loss,
                 args=TINY | {"beta": 0.1, "loss_type": ["sigmoid"], "optim": "sgd"} | args)  # fmt: skip


@pytest.mark.parametrize("loss", [None, "contrastive_preference", "contrastive_pg", "triple_preference",
                                  "offline_advantage_pg"])  # fmt: skip
def test_dpo_stage_trains_on_the_generated_pairs(world, pairs, tmp_path, loss):
    root, dataset = world
    st = dpo_stage(PieceSpec(name=loss) if loss else None)
    summary = run_stage(st, str(root / "model"), dataset, None, 0, tmp_path, "fp", upstream={"pairs": str(pairs[0])})
    assert summary["kind"] == "dpo" and summary["global_step"] == 2
    logged = [h for h in summary["log_history"] if "loss" in h]
    assert logged and all(torch.isfinite(torch.tensor(h["loss"])) for h in logged)
    from transformers import AutoModelForCausalLM

    a = AutoModelForCausalLM.from_pretrained(root / "model").state_dict()
    b = AutoModelForCausalLM.from_pretrained(tmp_path / "model").state_dict()
    if loss != "offline_advantage_pg":  # A-LoL may drop every pair of a tiny batch (no positive advantage)
        assert any(not torch.equal(a[k], b[k]) for k in a)


def test_registered_loss_sees_the_sequence_logprobs_of_chosen_and_rejected(world, pairs, tmp_path):
    """HarnessDPOTrainer's loss on one batch equals the registered loss on log-probs summed independently."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.algorithms.preference import PairBatch, contrastive_preference

    root, _ = world
    st = dpo_stage(PieceSpec(name="contrastive_preference", args={"alpha": 0.5}))
    tok = AutoTokenizer.from_pretrained(root / "model")
    trainer = build_trainer(st, str(root / "model"), None, 0, tmp_path, {"pairs": str(pairs[0])})
    rows = trainer.train_dataset
    n = min(4, len(rows))
    batch = trainer.data_collator([rows[i] for i in range(n)])
    got = trainer.compute_loss(trainer.model, batch).item()
    model = AutoModelForCausalLM.from_pretrained(root / "model")

    def seq_logp(prompt_ids, completion_ids) -> float:
        ids = torch.tensor([prompt_ids + completion_ids])
        logps = torch.log_softmax(model(ids).logits[0, :-1], -1)
        return sum(logps[len(prompt_ids) - 1 + t, c].item() for t, c in enumerate(completion_ids))

    ch = [seq_logp(r["prompt_ids"], r["chosen_ids"]) for r in rows.select(range(n))]
    rj = [seq_logp(r["prompt_ids"], r["rejected_ids"]) for r in rows.select(range(n))]
    assert tok.eos_token_id in rows[0]["chosen_ids"]  # TRL closed each completion with EOS
    ones = torch.ones(n)
    want = contrastive_preference(PairBatch(torch.tensor(ch), torch.tensor(rj), ones, ones), alpha=0.5).mean()
    assert got == pytest.approx(want.item(), rel=1e-4)


@pytest.fixture(scope="module")
def reward_model(world, pairs, tmp_path_factory):
    root, dataset = world
    out = tmp_path_factory.mktemp("rm")
    st = Stage(kind="reward_model", data="generated", rewards=[], args=TINY | {"learning_rate": 1e-3})
    summary = run_stage(st, str(root / "model"), dataset, None, 0, out, "fp", upstream={"pairs": str(pairs[0])})
    return out / "model", summary


def test_reward_model_stage_trains_a_scalar_head_that_learned_reward_reads(world, pairs, reward_model):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from harness.rewards import REWARDS

    folder, summary = reward_model
    assert summary["kind"] == "reward_model" and summary["global_step"] == 2
    rows = [json.loads(x) for x in (pairs[0] / "pairs.jsonl").read_text().splitlines()][:3]
    fn = REWARDS.get("learned_reward").build(model=str(folder))
    got = fn(completions=[r["chosen"] for r in rows], prompts=[r["prompt"] for r in rows])
    tok = AutoTokenizer.from_pretrained(folder)
    clf = AutoModelForSequenceClassification.from_pretrained(folder)
    for r, score in zip(rows, got, strict=True):  # one sequence at a time: no padding involved
        ids = tok(r["prompt"] + r["chosen"] + tok.eos_token, return_tensors="pt")
        assert score == pytest.approx(clf(**ids).logits[0, 0].item(), abs=1e-5)
    assert len(set(got)) > 1 or len({r["chosen"] for r in rows}) == 1


def grpo_on_scorer(world, reward: str, scorer, tmp_path, data: str = "train") -> list[dict]:
    """A one-step GRPO stage rewarded by a model an earlier stage trained (`scorer`: its folder); the log."""
    root, dataset = world
    st = grpo(rewards=(reward,))
    st.data = data
    summary = run_stage(st, str(root / "model"), dataset, root / "data", 0, tmp_path, "fp",
                                upstream={"reward_model": str(scorer)})  # fmt: skip
    return summary["log_history"]


def test_grpo_with_a_learned_reward_scores_with_the_trained_model(world, reward_model, tmp_path):
    log = grpo_on_scorer(world, "learned_reward", reward_model[0], tmp_path)
    rewards = [h["rewards/learned_reward/mean"] for h in log if "rewards/learned_reward/mean" in h]
    assert rewards and all(r not in (0.0, 1.0) for r in rewards)  # a real-valued score, not a 0/1 check


def _params_after_one_step(world, tmp_path, objective):
    trainer, _, after = train_once(world[0], tmp_path, grpo(objective))
    return {k: v.detach().clone() for k, v in after.items()}, trainer


def test_expert_mix_that_never_switches_leaves_grpo_unchanged(world, tmp_path):
    plain, _ = _params_after_one_step(world, tmp_path / "a", ObjectiveConfig())
    never = ObjectiveConfig(expert=PieceSpec(name="accuracy_switch", args={"threshold": -1.0}))
    mixed, trainer = _params_after_one_step(world, tmp_path / "b", never)
    for k in plain:
        torch.testing.assert_close(plain[k], mixed[k], msg=k)
    assert trainer.state.log_history[0]["expert/sft_weight"] == 0.0


def test_expert_mix_that_always_switches_trains_on_the_gold_answers(world, tmp_path):
    """threshold above any accuracy: pure SFT on the demonstrations, whose likelihood then rises."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root, _ = world
    tok = AutoTokenizer.from_pretrained(root / "model")
    gold = read_split(root / "data", "train")

    def nll(model) -> float:
        total = 0.0
        for r in gold:
            p = tok(r["prompt"], add_special_tokens=False)["input_ids"]
            a = tok(r["answer"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            logps = torch.log_softmax(model(torch.tensor([p + a])).logits[0, :-1], -1)
            total -= sum(logps[len(p) - 1 + t, c].item() for t, c in enumerate(a)) / len(a)
        return total / len(gold)

    always = ObjectiveConfig(expert=PieceSpec(name="accuracy_switch", args={"threshold": 2.0}))
    st = grpo(always, max_steps=3, learning_rate=0.2)
    trainer = build_trainer(st, str(root / "model"), rows(root), 0, tmp_path)
    trainer.train()
    assert all(h["expert/sft_weight"] == 1.0 for h in trainer.state.log_history if "expert/sft_weight" in h)
    with torch.no_grad():
        assert nll(trainer.model.eval()) < nll(AutoModelForCausalLM.from_pretrained(root / "model").eval())
