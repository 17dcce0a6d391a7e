"""The generative-judge reward (harness/rewards/judge.py), its toy world (harness/world/verdicts.py), and how the
harness builds, fetches, plans and hands over the model a judge reads."""

from __future__ import annotations

import dataclasses
import random

import datasets
import pytest
import torch

from harness.config.errors import ConfigError
from harness.config.schema import Stage
from harness.config.stage import ObjectiveConfig, RewardSpec
from harness.rewards import REWARDS
from harness.world.splits import read_split
from harness.world.verdicts import VerdictSpec, make_splits, near_miss
from tests.conftest import build_trainer, write_bundle

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


def test_the_judge_trains_a_policy_in_a_real_grpo_loop(world, tmp_path):
    """Two GRPO steps on the toy world with the toy model as a frozen judge: scores reach TRL, the policy moves,
    the judge does not, and each distinct completion is judged once."""
    root, _ = world
    args = dict(learning_rate=1e-2, max_steps=2, per_device_train_batch_size=8, num_generations=4,
                max_completion_length=4, save_steps=100, logging_steps=1, optim="sgd")  # fmt: skip
    st = Stage(kind="grpo", data="train", objective=ObjectiveConfig(), args=args,
               rewards=[RewardSpec(name="judge", args={"model": "toy-sum-judge", "template": TEMPLATE})])  # fmt: skip
    rows = datasets.Dataset.from_list(read_split(root / "data", "train"))
    trainer = build_trainer(st, str(root / "model"), rows, 0, tmp_path / "ckpt",
                            models={"toy-sum-judge": str(root / "model")})  # fmt: skip
    fn = trainer.reward_funcs[0]
    before = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    trainer.train()
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


# -- the harness around it: config, plan, hub, memory

BUNDLE = """
paper: {title: a judged paper}
variants:
  base: {}
  plain:
    stages: [{kind: grpo, data: train, rewards: [{name: exact_match}]}]
  judged:
    stages: [{kind: grpo, data: train, rewards: [{name: judge, args: {model: toy-sum-judge,
              template: "{prompt}{completion}?"}}]}]
scales:
  toy: {}
  paper:
    stages:
      judged.stages.0: {rewards: [{name: judge_with_reference, args: {model: MODEL, chat: true,
                        template: "Question: {prompt} Reference: {answer} Response: {completion} Correct?"}}]}
"""


def test_the_judge_model_is_built_before_the_stage_and_handed_to_it(tmp_path):
    from harness.plan import Plan

    write_bundle(tmp_path, "judged", BUNDLE.replace("MODEL", "qwen2.5-7b-instruct"))
    plan = Plan(["judged"], "toy", papers_dir=tmp_path)
    run = plan.run("judged", "judged", 0)
    assert "results/world/models/toy-sum-judge/pretrain.json" in plan.stage_inputs(run, 0)
    assert plan.stage_job(run, 0).models == {"toy-sum-judge": "results/world/models/toy-sum-judge"}
    assert "toy-sum-judge" in plan.toy_models()  # so the pretrain rule builds it


def test_a_hub_judge_is_fetched_pinned_read_offline_and_planned_in_memory(tmp_path):
    from harness.config.load import load_component
    from harness.hub import local_model, model_marker, offline_stage, paper_items, run_revisions
    from harness.memory import GiB, plan_paper
    from harness.plan import Plan

    write_bundle(tmp_path, "judged", BUNDLE.replace("MODEL", "qwen2.5-7b-instruct"))
    plan = Plan(["judged"], "paper", papers_dir=tmp_path)
    rp, run = plan.papers["judged"], plan.run("judged", "judged", 0)
    judge_cfg = load_component("models", "qwen2.5-7b-instruct", tmp_path, "test")
    assert model_marker(judge_cfg) in plan.stage_hub_inputs(run, 0)
    assert "Qwen/Qwen2.5-7B-Instruct" in [i.repo_id for i in paper_items(rp)]
    assert run_revisions(rp, "judged")["hub.model.Qwen/Qwen2.5-7B-Instruct"] == str(judge_cfg.revision)
    job = plan.stage_job(run, 0)
    assert job.models == {"qwen2.5-7b-instruct": "Qwen/Qwen2.5-7B-Instruct"}
    root, sha = tmp_path / "hf", "a" * 40  # both models pinned and in the hub cache, as `harness fetch` leaves them
    pinned = {n: dataclasses.replace(m, revision=sha) for n, m in rp.models.items()}
    for m in pinned.values():
        (root / "hub" / f"models--{m.hub_id.replace('/', '--')}" / "snapshots" / sha).mkdir(parents=True)
    job = dataclasses.replace(job, dataset=dataclasses.replace(job.dataset, revision=sha))
    (root / "hub" / f"datasets--{job.dataset.hub_path.replace('/', '--')}" / "snapshots" / sha).mkdir(parents=True)
    offline = offline_stage(job, pinned[rp.variants["judged"].model], root, {"qwen2.5-7b-instruct": pinned[
        "qwen2.5-7b-instruct"]})  # fmt: skip
    assert offline.models == {"qwen2.5-7b-instruct": local_model("Qwen/Qwen2.5-7B-Instruct", sha, root)}
    assert offline.model == local_model(pinned[rp.variants["judged"].model].hub_id, sha, root)
    judged, base = (next(p for p in plan_paper(rp, 80.0) if p.variant == v) for v in ("judged", "plain"))
    assert judged.estimate.parts["judges"] == pytest.approx(judge_cfg.architecture.params * 2)
    assert "judges" not in base.estimate.parts
    assert judged.estimate.total - base.estimate.total == pytest.approx(judge_cfg.architecture.params * 2, rel=0.01)
    assert judged.estimate.parts["judges"] / GiB > 14  # a 7B judge in bf16


def test_an_unknown_judge_model_names_the_stage_key(tmp_path):
    from harness.config.load import load_paper

    write_bundle(tmp_path, "judged", BUNDLE.replace("MODEL", "no-such-judge"))
    with pytest.raises(ConfigError, match=r"scales\.paper\.stages\.judged\.stages\.0\.rewards\.0\.args\.model|"
                                          r"variants\.judged\.stages\.0\.rewards\.0\.args\.model") as e:  # fmt: skip
        load_paper("judged", "paper", papers_dir=tmp_path)
    assert "no-such-judge" in str(e.value)


# -- judges in an evaluation suite


def test_an_eval_suite_judge_scores_every_response_with_the_frozen_model(world):
    from harness.config.components import JudgeSpec
    from harness.evaluation.evaluate import judge_metrics

    root, _ = world
    spec = RewardSpec(name="judge", args={"model": "toy-sum-judge", "template": TEMPLATE})
    got = judge_metrics([JudgeSpec("sums", [spec])], [["46", "47"], ["15"]], ["46", "15"], ["12+34=", "7+8="], [0, 1],
                        models={"toy-sum-judge": str(root / "model")})  # fmt: skip
    texts = ["12+34=46?", "12+34=47?", "7+8=15?"]
    assert got["judge/sums"] == pytest.approx(sum(direct_probability(root / "model", t) for t in texts) / 3, abs=1e-5)
    with pytest.raises(ValueError, match="reads model 'toy-sum-judge', which was not given"):
        judge_metrics([JudgeSpec("sums", [spec])], [["46"]], ["46"], ["12+34="], [0])


def test_a_suite_judges_model_is_built_before_the_evaluation_and_an_unknown_one_named(tmp_path, monkeypatch):
    from harness.config import load
    from harness.layout import CONFIGS
    from harness.plan import Plan

    write_bundle(tmp_path, "judged", BUNDLE.replace("MODEL", "qwen2.5-7b-instruct").replace(
        "  toy: {}", "  toy: {eval: toy-arith-judged}"))  # fmt: skip
    plan = Plan(["judged"], "toy", papers_dir=tmp_path)
    run = plan.run("judged", "base", 0)
    assert "results/world/models/toy-sum-judge/pretrain.json" in plan.eval_inputs(run)
    assert plan.judge_models("judged") == {"toy-sum-judge": "results/world/models/toy-sum-judge"}
    configs = tmp_path / "configs"
    for kind in ("models", "datasets", "eval", "scales"):
        (configs / kind).mkdir(parents=True)
        for f in (CONFIGS / kind).glob("*.yaml"):
            (configs / kind / f.name).write_text(f.read_text())
    suite = configs / "eval" / "toy-arith-judged.yaml"
    suite.write_text(suite.read_text().replace("model: toy-sum-judge", "model: no-such-judge"))
    monkeypatch.setattr(load, "CONFIGS", configs)
    with pytest.raises(ConfigError, match=r"toy-arith-judged\.yaml: judges\.0\.rewards\.0\.args\.model") as e:
        load.load_paper("judged", "toy", papers_dir=tmp_path)
    assert "no-such-judge" in str(e.value)


# -- a toy model fine-tuned from another (toy.init_from): how the toy judge is made


def test_a_toy_model_can_start_from_another_and_keeps_its_tokenizer(world, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.world.splits import write_rows
    from harness.world.toy_model import ToyModelSpec, pretrain

    root, _ = world
    splits = make_splits(VerdictSpec(n_train=16, n_pool=4, n_test=8, n_pretrain=64))
    write_rows(splits, tmp_path / "data")
    start = AutoModelForCausalLM.from_pretrained(root / "model")
    summary = pretrain(ToyModelSpec(pretrain_steps=2, batch_size=8, init_from="toy-arith"), tmp_path / "data",
                       tmp_path / "no-tokenizer-here", tmp_path / "judge", log_every=1, init_dir=root / "model")  # fmt: skip
    assert summary["steps"] == 2
    tuned = AutoModelForCausalLM.from_pretrained(tmp_path / "judge")
    assert tuned.config.hidden_size == start.config.hidden_size == 32  # the fixture's architecture, not the spec's 128
    assert AutoTokenizer.from_pretrained(tmp_path / "judge").get_vocab() == AutoTokenizer.from_pretrained(
        root / "model").get_vocab()  # fmt: skip
    moved = [n for n, p in tuned.named_parameters() if not torch.equal(p, dict(start.named_parameters())[n])]
    assert moved  # fine-tuned, not copied


@pytest.mark.parametrize(
    "init, message",
    [("toy-sum-judge", "a model cannot start from itself"), ("no-such-model", "no model config")],
)
def test_init_from_names_another_toy_model_config(tmp_path, monkeypatch, init, message):
    from harness.config import load
    from harness.layout import CONFIGS

    models = tmp_path / "models"
    models.mkdir()
    text = (CONFIGS / "models" / "toy-sum-judge.yaml").read_text().replace("init_from: toy-arith", f"init_from: {init}")
    (models / "toy-sum-judge.yaml").write_text(text)
    monkeypatch.setattr(load, "CONFIGS", tmp_path)
    with pytest.raises(ConfigError, match=f"toy.init_from: {message}"):
        load.load_component("models", "toy-sum-judge", tmp_path, "test")


def test_the_judge_waits_for_the_model_it_starts_from(tmp_path):
    from harness.plan import Plan

    write_bundle(tmp_path, "judged", BUNDLE.replace("MODEL", "qwen2.5-7b-instruct").replace("  plain:\n    stages: [{kind: grpo, data: train, rewards: [{name: exact_match}]}]\n", ""))  # fmt: skip
    plan = Plan(["judged"], "toy", papers_dir=tmp_path)
    assert "results/world/models/toy-arith/pretrain.json" in plan.pretrain_inputs("toy-sum-judge")
    assert {"toy-arith", "toy-sum-judge"} <= set(plan.toy_models())
    assert plan.model_fingerprint("toy-sum-judge") != Plan(["judged"], "toy", papers_dir=tmp_path).model_fingerprint(
        "toy-arith")  # fmt: skip
