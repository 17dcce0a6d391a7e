"""The generative-judge reward (harness/rewards/judge.py), its toy world (harness/world/verdicts.py), and how the
harness builds, fetches, plans and hands over the model a judge reads."""

from __future__ import annotations

import random

import datasets
import pytest
import torch

from harness.config.schema import Stage
from harness.config.stage import ObjectiveConfig, RewardSpec
from harness.rewards import REWARDS
from harness.world.splits import read_split
from harness.world.verdicts import VerdictSpec, make_splits, near_miss
from tests.conftest import build_trainer

TEMPLATE = "{prompt}{completion}?"


def judge(model_dir, **args):
    spec = {"model": "toy-sum-judge", "template": TEMPLATE} | args
    return REWARDS.get("judge_with_reference" if "{answer}" in spec["template"] else "judge").build(
        **spec, location=str(model_dir))  # fmt: skip


def direct_probability(model_dir, text: str) -> float:
    """p(yes) / (p(yes) + p(no)) at the position after `text`, by one unbatched forward pass."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok, model = AutoTokenizer.from_pretrained(model_dir), AutoModelForCausalLM.from_pretrained(model_dir).eval()
    ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
    yes, no = (tok(w, add_special_tokens=False)["input_ids"][0] for w in ("yes", "no"))
    with torch.no_grad():
        last = model(input_ids=ids).logits[0, -1].double()
    return float(torch.softmax(last[[yes, no]], dim=0)[0])


# -- the verdict world


def test_verdict_splits_hold_out_their_sums_and_pretraining_pairs_each_sum_right_and_wrong():
    splits = make_splits(VerdictSpec(n_train=50, n_pool=50, n_test=20, n_pretrain=200))
    held = {s: {r["expression"] for r in splits[s]} for s in ("train", "pool", "test", "pretrain")}
    assert not held["test"] & (held["train"] | held["pool"] | held["pretrain"])
    assert not held["train"] & held["pretrain"]
    pre = splits["pretrain"]
    assert len(pre) == 400 and {r["answer"] for r in pre[0::2]} | {r["answer"] for r in pre[1::2]} == {"yes", "no"}
    for a, b in zip(pre[0::2], pre[1::2], strict=True):  # each sum twice, once right and once wrong
        assert a["expression"] == b["expression"] and {a["answer"], b["answer"]} == {"yes", "no"}
    for r in sum(splits.values(), []):
        right = str(eval(r["expression"][:-1])) == r["candidate"]  # noqa: S307 (our own digits and +)
        assert r["answer"] == ("yes" if right else "no") and r["prompt"] == f"{r['expression']}{r['candidate']}?"
        assert r["solution"] == f"{eval(r['expression'][:-1])} {r['answer']}"  # noqa: S307


def test_near_misses_are_never_the_value_and_look_like_policy_mistakes():
    rng = random.Random(0)
    for value in (0, 7, 10, 46, 99, 198):
        misses = [near_miss(rng, value) for _ in range(200)]
        assert value not in misses and min(misses) >= 0
        assert all(abs(m - value) <= 11 or sorted(str(m)) == sorted(str(value)) for m in misses)


def test_the_skill_check_reads_a_verdicts_last_word():
    from harness.world.toy_model import _correct

    rows = [
        {"answer": "yes", "candidate": "46"},
        {"answer": "no", "candidate": "56"},
        {"answer": "no", "candidate": "1"},
    ]
    assert _correct(["46 yes", "46 no", ""], rows) == [True, True, False]
    assert _correct(["yes 46"], rows[:1]) == [False]


# -- the reward


def test_probability_is_the_positive_labels_share_as_a_direct_forward_pass_computes_it(world):
    root, _ = world
    fn = judge(root / "model", batch_size=4)
    prompts, completions = ["12+34=", "7+8=", "99+99="], ["46", " 15 ", "1234567"]  # different lengths, one batch
    got = fn(completions, prompts=prompts)
    want = [direct_probability(root / "model", f"{p}{c.strip()}?") for p, c in zip(prompts, completions, strict=True)]
    assert got == pytest.approx(want, abs=1e-5)
    assert all(0.0 < s < 1.0 for s in got)


def test_threshold_turns_the_soft_verdict_into_a_binary_one(world):
    root, _ = world
    prompts, completions = ["12+34=", "7+8=", "5+5="], ["46", "15", "11"]
    soft = judge(root / "model")(completions, prompts=prompts)
    cut = sorted(soft)[1]
    hard = judge(root / "model", threshold=cut)(completions, prompts=prompts)
    assert hard == [1.0 if s >= cut else 0.0 for s in soft] and set(hard) == {0.0, 1.0}


def test_each_rendered_text_is_judged_once(world):
    root, _ = world
    fn = judge(root / "model")
    logged = {}
    first = fn(["46", "46", "47"], prompts=["12+34="] * 3, log_metric=lambda k, v: logged.__setitem__(k, v))
    assert fn.calls == 2 and logged == {"judge/judged": 2.0, "judge/cached": 1.0}
    again = fn(["47", "46"], prompts=["12+34=", "12+34="], log_metric=lambda k, v: logged.__setitem__(k, v))
    assert fn.calls == 2 and logged == {"judge/judged": 0.0, "judge/cached": 2.0}
    assert again == [first[2], first[0]]
    assert fn(["46"], prompts=["12+35="]) and fn.calls == 3  # another prompt is another text


def test_the_reference_is_rendered_only_into_judge_with_reference(world):
    root, _ = world
    ref = judge(root / "model", template="{prompt}{completion}={answer}?")
    assert ref.render("1+2=", " 3 ", "3") == "1+2=3=3?"
    assert ref(["3"], prompts=["1+2="], answer=["3"]) == pytest.approx(
        [direct_probability(root / "model", "1+2=3=3?")], abs=1e-5)  # fmt: skip
    assert REWARDS.get("judge_with_reference").needs_labels and not REWARDS.get("judge").needs_labels


def test_score_parse_reads_the_number_the_judge_writes_batched_as_alone(world):
    """The judge's greedy text, unbatched, holds the number `pattern` reads (the untrained judge writes digits)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root, _ = world
    fn = judge(root / "model", parse="score", pattern=r"(\d)", max_score=9, max_new_tokens=4, batch_size=3)
    prompts, completions = ["12+34=", "7+8=", "99+99="], ["46", "15", "1"]
    got = fn(completions, prompts=prompts)
    tok, model = AutoTokenizer.from_pretrained(root / "model"), AutoModelForCausalLM.from_pretrained(root / "model")
    want = []
    for p, c in zip(prompts, completions, strict=True):
        ids = torch.tensor([tok(f"{p}{c}?", add_special_tokens=False)["input_ids"]])
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=4,
                             pad_token_id=tok.pad_token_id)  # fmt: skip
        text = tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        digits = [ch for ch in text if ch.isdigit()]
        want.append(int(digits[0]) / 9 if digits else None)
    assert got == pytest.approx(want) if None not in want else got == want


def random_judge(root, out):
    """A 2-layer Llama with random weights (seed 0) and the toy world's tokenizer: it writes varied tokens."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(root / "model")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)  # fmt: skip
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_think_reads_the_verdict_where_the_judge_first_writes_a_label(world, tmp_path):
    """With `think`, the soft verdict is read at the first written token of either label, from that step's logits:
    here the positive label is a token the judge writes at a later step of the first text, so it reads after some
    'reasoning' (labels chosen from what this random judge writes)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root, _ = world
    where = random_judge(root, tmp_path / "judge")
    tok, model = AutoTokenizer.from_pretrained(where), AutoModelForCausalLM.from_pretrained(where)
    texts = ["12+34=46?", "7+8=15?", "99+99=1234?"]

    def written(text):
        ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=6,
                             pad_token_id=tok.pad_token_id, return_dict_in_generate=True, output_logits=True)  # fmt: skip
        return out.sequences[0, ids.shape[1] :].tolist(), out.logits

    def firsts(w):
        return {tok(v, add_special_tokens=False)["input_ids"][0] for v in (w, " " + w)
                if tok.decode(tok(v, add_special_tokens=False)["input_ids"][:1]).strip()}  # fmt: skip

    def plain(x):  # a token that is a printable word of its own
        w = tok.decode([x]).strip()
        return w.isascii() and w.isprintable() and bool(w) and x in firsts(w)

    anchor, later = next((k, t) for k, text in enumerate(texts) for steps in [written(text)[0]]
                         for t in range(1, len(steps)) if plain(steps[t]) and not firsts(
                             tok.decode([steps[t]]).strip()) & set(steps[:t]))  # fmt: skip
    steps = written(texts[anchor])[0]
    positive = tok.decode([steps[later]]).strip()
    negative = next(w for w in "0123456789" if not firsts(w) & (set(steps[: later + 1]) | firsts(positive)))
    fn = judge(where, think=True, labels=[positive, negative], max_new_tokens=6, batch_size=3)
    got = fn([t[len(t.split("=")[0]) + 1 : -1] for t in texts], prompts=[t.split("=")[0] + "=" for t in texts])
    want = []
    for text in texts:
        seq, logits = written(text)
        at = next((t for t, x in enumerate(seq) if x in firsts(positive) | firsts(negative)), None)
        if at is None:
            want.append(None)
            continue
        p_of = torch.softmax(logits[at][0].double(), dim=0)
        yes, no = (sum(p_of[i] for i in firsts(w)) for w in (positive, negative))
        want.append(float(yes / (yes + no)))
    assert want[anchor] is not None and later >= 1  # read after at least one written token
    assert [g is None for g in got] == [w is None for w in want]
    assert [g for g in got if g is not None] == pytest.approx([w for w in want if w is not None], abs=1e-5)


@pytest.mark.parametrize(
    "args, message",
    [
        ({"template": "{prompt}?"}, r"template: has no \{completion\} field"),
        ({"template": "{prompt}{completion}={answer}?"}, r"unknown field \{answer\} \(the gold answer is judge_with_"),
        ({"parse": "vote"}, r"parse: 'vote' is not one of"),
        ({"labels": ["yes", "yes"]}, r"labels: two different words"),
        ({"parse": "score"}, r"pattern: parse `score` needs"),
        ({"parse": "score", "pattern": r"\d+"}, r"pattern: needs exactly one group"),
        ({"threshold": 2.0}, r"threshold: in \[0, 1\]"),
        ({"parse": "score", "pattern": r"(\d+)", "think": True}, r"think: only with parse `probability`"),
    ],
)
def test_bad_judge_arguments_are_refused_at_config_time(args, message):
    found = REWARDS.get("judge").args_problem({"model": "toy-sum-judge", "template": TEMPLATE} | args)
    assert found is not None and found[0] == ""
    assert __import__("re").search(message, found[1]), found[1]
    assert REWARDS.get("judge").args_problem({"model": "m", "template": TEMPLATE, "location": "/x"})[0] == "location"


def judged_grpo(root, tmp_path, spec: RewardSpec):
    """Two SGD steps of GRPO on the toy world rewarded by `spec`, whose judge is the world's model: (the trained
    trainer, its reward function, the policy's weights before)."""
    args = dict(learning_rate=1e-2, max_steps=2, per_device_train_batch_size=8, num_generations=4,
                max_completion_length=4, save_steps=100, logging_steps=1, optim="sgd")  # fmt: skip
    st = Stage(kind="grpo", data="train", objective=ObjectiveConfig(), args=args, rewards=[spec])
    rows = datasets.Dataset.from_list(read_split(root / "data", "train"))
    trainer = build_trainer(st, str(root / "model"), rows, 0, tmp_path / "ckpt",
                            models={"toy-sum-judge": str(root / "model")})  # fmt: skip
    before = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    trainer.train()
    return trainer, trainer.reward_funcs[0], before


def test_the_judge_trains_a_policy_in_a_real_grpo_loop(world, tmp_path):
    """Two GRPO steps on the toy world with the toy model as a frozen judge: scores reach TRL, the policy moves,
    the judge does not, and each distinct completion is judged once."""
    root, _ = world
    trainer, fn, before = judged_grpo(root, tmp_path, RewardSpec(name="judge", args={"model": "toy-sum-judge",
                                                                                   "template": TEMPLATE}))  # fmt: skip
    logged = [e for e in trainer.state.log_history if "rewards/judge/mean" in e]
    assert len(logged) == 2 and all(0.0 < e["rewards/judge/mean"] < 1.0 for e in logged)
    assert 0 < fn.calls <= 16 and len(fn.cache) == fn.calls
    assert any(not torch.equal(before[k], v) for k, v in trainer.model.named_parameters())
    assert all(not p.requires_grad for p in fn._model.parameters()) and not fn._model.training


def test_a_stage_without_its_judges_location_says_so(world):
    from harness.stages.plumbing import build_rewards

    st = Stage(kind="grpo", data="train", objective=ObjectiveConfig(), args={},
               rewards=[RewardSpec(name="judge", args={"model": "toy-sum-judge", "template": TEMPLATE})])  # fmt: skip
    with pytest.raises(ValueError, match="reads model 'toy-sum-judge', which the job was not given"):
        build_rewards(st)
