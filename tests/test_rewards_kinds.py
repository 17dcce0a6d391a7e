"""The reward kinds beyond exact match: per-sample, group-aware, model-aware and stateful rewards,
against hand-computed values; a tiny random Llama stands in for the policy and the embedding model."""

from __future__ import annotations

import json
import math

import pytest

from harness.grader import answer_span, extract_answer, normalize
from harness.rewards import REWARDS, PolicyScorer, across_processes
from harness.rewards.model import HFScorer

# --------------------------------------------------------------------------- registry


@pytest.mark.parametrize(
    ("name", "flags"),
    [
        ("length", dict(needs_labels=False, group_aware=False)),
        ("novelty", dict(needs_labels=False, group_aware=True)),
        ("paraphrase_agreement", dict(needs_labels=False, group_aware=True)),
        ("reference_probability", dict(needs_labels=True, needs_policy=True)),
        ("refined_label", dict(needs_labels=True, group_aware=True, stateful=True)),
        ("trajectory_vote", dict(needs_labels=True, group_aware=True, partial_labels=True, stateful=True)),
        ("majority_vote", dict(needs_labels=False, group_aware=True)),
        ("confidence_vote", dict(needs_labels=False, group_aware=True, needs_policy=True)),
        ("bootstrapped_winrate", dict(needs_labels=True, group_aware=True)),
    ],
)
def test_rewards_are_registered_with_their_flags(name, flags):
    factory = REWARDS.get(name)
    defaults = dict(group_aware=False, partial_labels=False, needs_policy=False, stateful=False)
    for flag, value in {**defaults, **flags}.items():
        assert getattr(factory, flag) is value, flag


def test_callable_object_rewards_are_named_and_keep_their_name_when_wrapped():
    fn = REWARDS.get("refined_label").build()
    assert fn.__name__ == "refined_label"
    wrapped = across_processes(fn)
    assert wrapped.__name__ == "refined_label" and wrapped.inner is fn
    assert wrapped.state_dict == fn.state_dict  # stateful methods reach through
    assert across_processes(wrapped) is wrapped  # wrapping twice would gather twice
    assert not hasattr(across_processes(REWARDS.get("majority_vote").build()), "state_dict")


def test_across_processes_in_one_process_is_the_reward():
    fn = REWARDS.get("majority_vote").build()
    completions, ids = ["3", "4", "4", "7"], [0, 0, 0, 1]
    assert across_processes(fn)(completions, id=ids) == fn(completions, id=ids) == [0.0, 1.0, 1.0, 1.0]


def test_setting_the_policy_through_the_wrapper_reaches_the_reward():
    fn = REWARDS.get("reference_probability").build()
    across_processes(fn).policy = "scorer"
    assert fn.policy == "scorer"


# --------------------------------------------------------------------------- per-sample


def test_length():
    fn = REWARDS.get("length").build(max_chars=8)
    # 1 - min(len, 8) / 8: 0 chars -> 1, 2 -> 0.75, 6 -> 0.25, 8 and beyond -> 0
    assert fn(["", "42", "so, 42", "12345678", "a" * 50], id=[0] * 5) == [1.0, 0.75, 0.25, 0.0, 0.0]
    with pytest.raises(ValueError, match="max_chars must be positive"):
        REWARDS.get("length").build(max_chars=0)


# --------------------------------------------------------------------------- group-aware


def test_novelty_edit():
    fn = REWARDS.get("novelty").build()
    # "abcd" vs "abce": 3 matched chars of 8 -> ratio 6/8 = 0.75; "wxyz" shares nothing with either.
    # r0 = 1 - (0.75 + 0) / 2 = 0.625; r1 the same; r2 = 1 - 0 = 1; a lone completion gets 0.
    out = fn(["abcd", "abce", "wxyz", "alone"], id=["g", "g", "g", "h"])
    assert out == pytest.approx([0.625, 0.625, 1.0, 0.0])
    # identical completions are not novel at all
    assert fn(["same text"] * 3, id=[1, 1, 1]) == [0.0, 0.0, 0.0]


def test_novelty_refuses_bad_arguments():
    with pytest.raises(ValueError, match="unknown similarity"):
        REWARDS.get("novelty").build(similarity="jaccard")
    with pytest.raises(ValueError, match="needs `model`"):
        REWARDS.get("novelty").build(similarity="embedding")


def test_paraphrase_agreement():
    fn = REWARDS.get("paraphrase_agreement").build()
    # fmt: off
    completions = ["4", "5", "4",  # pair 0, view 0: votes 4
                   "4", "4", "6",  # pair 0, view 1: votes 4
                   "7", "8", "8",  # pair 1, view 0: votes 8
                   "7", "x", "7",  # pair 1, view 1: votes 7
                   "3", "3",       # pair 2, view 0: its twin is not in the batch
                   "2", "x",       # pair 3, view 0
                   "x", "y"]       # pair 3, view 1: nobody answered
    pair = [0] * 6 + [1] * 6 + [2] * 2 + [3] * 4
    view = [0, 0, 0, 1, 1, 1] * 2 + [0, 0] + [0, 0, 1, 1]
    # fmt: on
    out = fn(completions, pair=pair, view=view)
    # each row is scored against the OTHER view's majority, never its own
    assert out[:6] == [1.0, 0.0, 1.0, 1.0, 1.0, 0.0]
    assert out[6:12] == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # view 0 vs 7; view 1 vs 8
    assert out[12:14] == [0.0, 0.0]  # twin absent
    assert out[14:] == [0.0, 0.0, 0.0, 0.0]  # view 0's twin has no answer; view 1 has none vs 2
    with pytest.raises(ValueError, match="must be 0 or 1"):
        fn(["1"], pair=[0], view=[2])


# --------------------------------------------------------------------------- tiny real models


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A byte-level BPE tokenizer and a randomly initialised 2-layer Llama (and its headless twin)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, LlamaModel

    from harness.world.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("tiny")
    corpus = ["Q: 12+30= A: 12+30 is \\boxed{42}. I think 41, no idea.", "the answer is 7 8 9 so 45"] * 20
    train_tokenizer(corpus, root / "lm", vocab_size=300)
    tok = AutoTokenizer.from_pretrained(root / "lm")
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None)  # fmt: skip
    torch.manual_seed(0)
    lm = LlamaForCausalLM(cfg)
    lm.save_pretrained(root / "lm")
    torch.manual_seed(1)
    LlamaModel(cfg).save_pretrained(root / "embed")
    tok.save_pretrained(root / "embed")
    return {"lm": lm, "tok": tok, "embed_dir": str(root / "embed")}


def test_novelty_embedding_is_one_minus_mean_cosine_of_mean_pooled_states(tiny):
    import torch
    from transformers import AutoModel

    fn = REWARDS.get("novelty").build(similarity="embedding", model=tiny["embed_dir"])
    texts = ["12+30 is 42", "I think 41", "no idea at all, 7", "so 45"]
    out = fn(texts, id=[0, 0, 0, 1])
    # by hand: each text alone (no padding), mean over its tokens of the last hidden states
    model, tok = AutoModel.from_pretrained(tiny["embed_dir"]).eval(), tiny["tok"]
    with torch.no_grad():
        emb = [model(**tok(t, return_tensors="pt")).last_hidden_state[0].mean(0) for t in texts[:3]]
    cos = lambda a, b: torch.nn.functional.cosine_similarity(a, b, dim=0).item()  # noqa: E731
    expected = [1 - (cos(emb[0], emb[1]) + cos(emb[0], emb[2])) / 2,
                1 - (cos(emb[1], emb[0]) + cos(emb[1], emb[2])) / 2,
                1 - (cos(emb[2], emb[0]) + cos(emb[2], emb[1])) / 2, 0.0]  # fmt: skip
    assert out == pytest.approx(expected, abs=1e-5)
    assert len(set(round(x, 4) for x in out[:3])) == 3  # a real model, not a constant
    assert fn(["so 45", "so 45", "so 45"], id=[7, 7, 7]) == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)


def direct_logprobs(model, tok, context: str, target: str) -> list[float]:
    """One unpadded forward of context ids + target ids; the log-probs of the target's tokens."""
    import torch

    ctx, tgt = tok(context, add_special_tokens=False)["input_ids"], tok(target, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = model(input_ids=torch.tensor([ctx + tgt])).logits[0].log_softmax(-1)  # (T, V)
    return [logp[len(ctx) - 1 + t, tok_id].item() for t, tok_id in enumerate(tgt)]


def test_hf_scorer_matches_a_direct_forward_and_restores_train_mode(tiny):
    lm, tok = tiny["lm"], tiny["tok"]
    scorer = HFScorer(lm, tok, batch_size=2)
    assert isinstance(scorer, PolicyScorer)
    contexts = ["Q: 12+30= A: ", "I think", "the answer is 7 8 9 so "]
    targets = ["42", " 41", "45"]
    lm.train()
    got = scorer.logprobs(contexts, targets)
    assert lm.training  # eval() only while scoring
    lm.eval()
    for c, t, lps in zip(contexts, targets, got, strict=True):
        assert len(lps) == len(tok(t, add_special_tokens=False)["input_ids"])  # the target's own tokens
        assert lps == pytest.approx(direct_logprobs(lm, tok, c, t), abs=1e-5)  # padding changed nothing
    assert scorer.logprobs(["abc"], [""]) == [[]]


def test_reference_probability_mean_and_product(tiny):
    lm, tok = tiny["lm"], tiny["tok"]
    prompt = "Q: 12+30= A: "
    completions = ["12+30 is \\boxed{42}.", "I think 41", "no idea", "I think 41"]
    answer = ["42", "42", "42", None]
    # the gold answer replaces the completion's own answer: contexts end right before it
    contexts = [prompt + "12+30 is \\boxed{", prompt + "I think ", prompt + "no idea"]
    by_hand = [direct_logprobs(lm, tok, c, "42") for c in contexts]
    assert all(len(lps) == 2 for lps in by_hand)  # digits are single tokens: mean and product differ

    mean_fn = REWARDS.get("reference_probability").build()
    mean_fn.policy = HFScorer(lm, tok)
    out = mean_fn(completions, answer=answer, prompts=[prompt] * 4, id=[0, 0, 0, 1])
    assert out[:3] == pytest.approx([sum(math.exp(x) for x in lps) / 2 for lps in by_hand], rel=1e-5)
    assert out[3] is None  # no gold answer: unscorable

    product_fn = REWARDS.get("reference_probability").build(aggregate="product")
    product_fn.policy = HFScorer(lm, tok)
    out = product_fn(completions[:3], answer=answer[:3], prompt=[prompt] * 3)
    assert out == pytest.approx([math.exp(sum(lps)) for lps in by_hand], rel=1e-5)


def test_confidence_vote_weighs_each_answer_by_the_policys_confidence(tiny):
    lm, tok = tiny["lm"], tiny["tok"]
    prompt = "Q: 12+30= A: "
    completions = ["it is 41", "maybe 41", "surely 42", "so 42", "x", "41"]
    conf = [math.exp(sum(lp) / len(lp)) for lp in (direct_logprobs(lm, tok, prompt, c) for c in completions)]
    by_answer = {a: sum(c for c, x in zip(conf, completions, strict=True) if x.endswith(a)) for a in ("41", "42")}
    label = max(by_answer, key=by_answer.get)  # the tiny random model's confidences decide, not the counts
    fn = REWARDS.get("confidence_vote").build()
    fn.policy = HFScorer(lm, tok)
    out = fn(completions, id=[0] * 6, prompts=[prompt] * 6)
    assert out == [float(c.endswith(label)) for c in completions]
    # two subgroups of 3 vote alone: 41, 41, 42 in the first; 42, none, 41 in the second
    first = "41" if conf[0] + conf[1] > conf[2] else "42"
    second = "42" if conf[3] > conf[5] else "41"
    halves = REWARDS.get("confidence_vote").build(subgroups=2)
    halves.policy = HFScorer(lm, tok)
    assert halves(completions, id=[0] * 6, prompts=[prompt] * 6) == [
        float(first == "41"), float(first == "41"), float(first == "42"),
        float(second == "42"), 0.0, float(second == "41")]  # fmt: skip
    with pytest.raises(RuntimeError, match="set `fn.policy`"):
        REWARDS.get("confidence_vote").build()(completions, id=[0] * 6, prompts=[prompt] * 6)


def test_a_confident_minority_beats_a_majority_under_confidence_vote():
    class Scorer:  # log-probs by hand: the two "41" completions are unsure (p = 0.1), the "42" one sure (p = 0.9)
        def logprobs(self, contexts, targets):
            return [[math.log(0.9 if t.endswith("42") else 0.1)] * 2 for t in targets]

    assert isinstance(Scorer(), PolicyScorer)
    fn = REWARDS.get("confidence_vote").build()
    fn.policy = Scorer()
    assert fn(["a 41", "b 41", "c 42"], id=[0] * 3, prompts=["q"] * 3) == [0.0, 0.0, 1.0]  # 0.9 > 0.1 + 0.1
    assert REWARDS.get("majority_vote").build()(["a 41", "b 41", "c 42"], id=[0] * 3) == [1.0, 1.0, 0.0]


def test_reference_probability_without_policy_says_so():
    fn = REWARDS.get("reference_probability").build()
    with pytest.raises(RuntimeError, match="set `fn.policy`"):
        fn(["42"], answer=["42"], prompts=["q"])
    with pytest.raises(ValueError, match="unknown aggregate"):
        REWARDS.get("reference_probability").build(aggregate="max")


@pytest.mark.parametrize(
    ("text", "reasoning"),
    [("so \\boxed{\\frac{1}{2}} done", "so \\boxed{"), ("I have 3 and 5, so 8 total", "I have 3 and 5, so "),
     ("\\boxed{7} though 8", "\\boxed{"), ("no idea", None), ("unclosed \\boxed{4 then 5", "unclosed \\boxed{4 then ")],
)  # fmt: skip
def test_answer_span_is_where_extract_answer_reads(text, reasoning):
    span = answer_span(text)
    if reasoning is None:
        assert span is None and extract_answer(text) is None
    else:
        assert text[: span[0]] == reasoning
        assert normalize(text[span[0] : span[1]]) == extract_answer(text)


# --------------------------------------------------------------------------- stateful


def test_refined_label_flips_exactly_when_the_rule_allows():
    fn = REWARDS.get("refined_label").build(consistency=2, min_rate=0.5)
    logged = []
    ids = ["q"] * 4 + ["r"] * 4 + ["s"] * 4
    answer = ["8"] * 4 + ["3"] * 4 + ["5"] * 4  # labels as given, all three wrong

    def step(q, r, s):
        return fn(q + r + s, id=ids, answer=answer, log_metric=lambda name, v: logged.append((name, v)))

    # visit 1: every majority differs from its label, but one visit is not a history yet
    out = step(["7", "7", "7", "8"], ["3", "3", "3", "1"], ["6", "1", "2", "3"])
    assert out == [0, 0, 0, 1] + [1, 1, 1, 0] + [0, 0, 0, 0]
    # visit 2: q's majority is 7 again but its share fell from .75 to .5 (a tie; 7 came first);
    # r's majority changed to 4 (not stable yet); s's 6 is stable and not falling, but its share .25 < .5
    out = step(["7", "8", "7", "8"], ["4", "4", "4", "1"], ["6", "1", "2", "5"])
    assert out == [0, 1, 0, 1] + [0, 0, 0, 0] + [0, 0, 0, 1]
    # visit 3: all three flip: q's 7 (share .5 -> .75), r's 4 (.75 -> 1), s's 6 (.25 -> .5 >= min_rate)
    out = step(["7", "7", "7", "8"], ["4", "4", "4", "4"], ["6", "6", "1", "2"])
    assert out == [1, 1, 1, 0] + [1, 1, 1, 1] + [1, 1, 0, 0]
    assert logged == [("refined_label/refined", 0.0), ("refined_label/refined", 0.0), ("refined_label/refined", 3.0)]
    # visit 4: the given label "8" is back as q's majority, but only once: the refined label stays
    out = step(["8", "8", "8", "7"], ["4", "4", "4", "4"], ["6", "6", "6", "1"])
    assert out == [0, 0, 0, 1] + [1, 1, 1, 1] + [1, 1, 1, 0]
    state = fn.state_dict()
    assert state["ids"]["q"]["label"] == "7" and state["ids"]["q"]["given"] == "8"
    assert state["ids"]["q"]["history"] == [["7", 0.75], ["7", 0.5], ["7", 0.75], ["8", 0.75]]


def test_refined_label_refuses_a_one_visit_slope():
    with pytest.raises(ValueError, match="consistency must be >= 2"):
        REWARDS.get("refined_label").build(consistency=1)


def test_refined_label_state_round_trip_through_json_with_int_ids():
    ids, answer = [0, 0, 0, 1, 1, 1], ["5", "5", "5", "2", "2", "2"]
    first, flip = ["4", "4", "5", "2", "2", "2"], ["4", "4", "4", "2", "2", "1"]
    fn = REWARDS.get("refined_label").build()
    fn(first, id=ids, answer=answer)
    resumed = REWARDS.get("refined_label").build()
    resumed.load_state_dict(json.loads(json.dumps(fn.state_dict())))  # int ids come back as str keys
    fresh = REWARDS.get("refined_label").build()
    # id 0: majority 4 twice, share .67 -> 1.0 rising: the label flips on the resumed object too
    assert resumed(flip, id=ids, answer=answer) == fn(flip, id=ids, answer=answer) == [1, 1, 1, 1, 1, 0]
    assert fresh(flip, id=ids, answer=answer) == [0, 0, 0, 1, 1, 0]  # without the history: no flip
    assert resumed.state_dict() == fn.state_dict()


def trajectory_step(fn, a, b, u, v, logged):
    """One visit of labeled ids a (gold 1), b (gold 2) and unlabeled u, v; four completions each."""
    ids = ["a"] * 4 + ["b"] * 4 + ["u"] * 4 + ["v"] * 4
    answer = ["1"] * 4 + ["2"] * 4 + [None] * 8
    labeled = [True] * 8 + [False] * 8
    return fn(a + b + u + v, id=ids, answer=answer, labeled=labeled, log_metric=lambda n, x: logged.append(x))


def test_trajectory_vote_selects_unlabeled_ids_that_follow_the_labeled_trajectory():
    fn = REWARDS.get("trajectory_vote").build(min_visits=2, tolerance=0.25)
    logged = []
    # visit 1: labeled rates a .5, b .5 -> reference [.5]; u agrees with its majority 9 at .75, v at 1.
    # Nobody has 2 visits yet: unlabeled rows are unscorable.
    out = trajectory_step(fn, ["1", "1", "0", "0"], ["2", "2", "3", "x"], ["9", "9", "9", "2"], ["1"] * 4, logged)
    assert out[:8] == [1, 1, 0, 0, 1, 1, 0, 0]
    assert out[8:] == [None] * 8
    # visit 2: reference [.5, .75]; u's rates [.75, .75]: distance (.25 + 0) / 2 = .125: selected, rewarded by
    # its majority 9; v's rates [1, 1]: distance (.5 + .25) / 2 = .375 > .25: still unscorable
    out = trajectory_step(fn, ["1", "1", "1", "0"], ["2", "2", "2", "3"], ["9", "9", "9", "2"], ["1"] * 4, logged)
    assert out[8:] == [1, 1, 1, 0] + [None] * 4
    saved = json.loads(json.dumps(fn.state_dict()))
    # visit 3: reference [.5, .75, .75]; v's rates [1, 1, .75]: distance (.5 + .25 + 0) / 3 = .25 <= .25: on;
    # u answers nothing (rate 0): distance (.25 + 0 + .75) / 3 = .33 > .25: off
    third = (["1", "1", "1", "0"], ["2", "2", "2", "3"], ["x", "y", "z", "w"], ["1", "1", "1", "5"])
    out = trajectory_step(fn, *third, logged)
    assert out == [1, 1, 1, 0, 1, 1, 1, 0] + [None] * 4 + [1, 1, 1, 0]
    assert logged == [0.0, 0.5, 0.5]  # share of unlabeled rows selected, per call
    # a resumed object reproduces visit 3; a fresh one (one visit each) selects nobody
    resumed = REWARDS.get("trajectory_vote").build(min_visits=2, tolerance=0.25)
    resumed.load_state_dict(saved)
    assert trajectory_step(resumed, *third, []) == out
    assert trajectory_step(REWARDS.get("trajectory_vote").build(), *third, [])[8:] == [None] * 8


def test_trajectory_vote_refuses_a_labeled_row_without_answer():
    fn = REWARDS.get("trajectory_vote").build()
    with pytest.raises(ValueError, match="labeled but its answer is None"):
        fn(["1"], id=[0], answer=[None], labeled=[True])
