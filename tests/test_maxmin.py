"""MaxMin-RLHF's pieces: the synthetic labeler population, the EM mixture of reward models (a tiny real run),
the worst-served group's reward, per-group evaluation judges, and the two-style toy data."""

from __future__ import annotations

import json

import pytest

from harness.config.components import EvalConfig, JudgeSpec
from harness.config.schema import Stage
from harness.config.stage import RewardSpec
from harness.evaluation.evaluate import evaluate, judge_metrics
from harness.grader import is_correct
from harness.rewards import REWARDS
from harness.world.arithmetic import ArithmeticSpec
from tests.conftest import run_stage

WORKING = [{"name": "exact_match"}, {"name": "matches", "weight": 0.5, "args": {"pattern": r"\d+(;\d+)+"}}]
TERSE = [{"name": "exact_match"}, {"name": "matches", "weight": 0.5, "args": {"pattern": r"\d+"}}]
GROUPS = [{"name": "working", "users": 8, "rewards": WORKING}, {"name": "terse", "users": 2, "rewards": TERSE}]


def test_labelers_are_drawn_by_their_groups_share_and_score_with_their_groups_rewards():
    judge = REWARDS.get("user_mixture").build(groups=GROUPS, seed=3)
    again = REWARDS.get("user_mixture").build(groups=GROUPS, seed=3)
    ids = list(range(4000))
    labelers = [judge.labeler(i) for i in ids]
    assert labelers == [again.labeler(i) for i in ids]  # the same labeler on every call and process
    assert set(labelers) == set(range(10))
    terse_share = sum(judge.labeler_group[u] == "terse" for u in labelers) / len(ids)
    assert abs(terse_share - 0.2) < 0.03  # 2 of 10 labelers
    completions, answers = ["46;51", "51", "50", "46;50"] * 25, ["51"] * 100
    got = judge(completions, id=ids[:100], answer=answers)
    for c, a, i, score in zip(completions, answers, ids[:100], got, strict=True):  # recomputed from the definitions
        style = ";" in c if judge.labeler_group[judge.labeler(i)] == "working" else ";" not in c
        assert score == pytest.approx(float(is_correct(c, a)) + 0.5 * style)
    assert judge.annotate({"id": 7}) == {"labeler": judge.labeler(7)}


def test_two_style_data_keeps_its_problems_and_shows_the_working_in_the_chosen_share():
    from harness.world.arithmetic import check_spec, make_splits

    spec = dict(min_operands=3, max_operands=3, max_value=49, scratchpad=True, n_pretrain=2000)
    plain, mixed = make_splits(ArithmeticSpec(**spec)), make_splits(ArithmeticSpec(**spec, scratchpad_share=0.5))
    for split in plain:
        assert [r["prompt"] for r in plain[split]] == [r["prompt"] for r in mixed[split]]
        assert [r["answer"] for r in plain[split]] == [r["answer"] for r in mixed[split]]
    rows = mixed["pretrain"]
    shown = [r for r in rows if ";" in r["solution"]]
    assert abs(len(shown) / len(rows) - 0.5) < 0.05
    assert all(r["solution"] == r["answer"] for r in rows if r not in shown)
    assert all(r["solution"].split(";")[-1] == r["answer"] for r in shown)
    with pytest.raises(ValueError, match="scratchpad_share"):
        check_spec(ArithmeticSpec(scratchpad_share=0.5))  # needs scratchpad: true


def test_generate_with_a_user_mixture_records_each_pairs_labeler(world, tmp_path):
    root, dataset = world
    args = dict(num_samples=4, temperature=1.0, max_new_tokens=4, max_prompts=16, batch_size=8,
                apply_chat_template=False, generation_engine="hf")  # fmt: skip
    groups = [{"name": "any", "users": 2, "rewards": [{"name": "format"}]},
              {"name": "short", "users": 1, "rewards": [{"name": "length", "args": {"max_chars": 4}}]}]  # fmt: skip
    st = Stage(kind="generate", data="train", rewards=[RewardSpec("user_mixture", args={"groups": groups})], args=args)
    run_stage(st, str(root / "model"), dataset, root / "data", 0, tmp_path, "fp")
    judge = REWARDS.get("user_mixture").build(groups=groups)
    samples = [json.loads(x) for x in (tmp_path / "samples.jsonl").read_text().splitlines()]
    pairs = [json.loads(x) for x in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert pairs and all(p["labeler"] == judge.labeler(p["id"]) for p in pairs)
    for s in samples:
        assert s["labeler"] == judge.labeler(s["id"])
        assert s["scores"] == pytest.approx(judge(s["completions"], id=[s["id"]] * 4))


# ----------------------------------------------------------------------------- the EM mixture (tiny real run)
RM_ARGS = dict(max_steps=30, per_device_train_batch_size=8, save_steps=1000, logging_steps=10, learning_rate=3e-3,
               num_groups=2, em_iterations=2)  # fmt: skip


def opposed_pairs(root) -> str:
    """Labelers 0-3 prefer `11` to `99`; labelers 4-5 the reverse: two groups, the second a minority."""
    from harness.world.splits import read_split

    prompts = [r["prompt"] for r in read_split(root / "data", "train")]
    rows = []
    for u in range(6):
        for j in range(8):
            good, bad = ("11", "99") if u < 4 else ("99", "11")
            rows.append({"id": len(rows), "prompt": prompts[(u * 8 + j) % len(prompts)], "chosen": good,
                         "rejected": bad, "labeler": u})  # fmt: skip
    folder = root / "opposed-pairs"
    folder.mkdir(exist_ok=True)
    (folder / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(folder)


@pytest.fixture(scope="module")
def mixture(world, tmp_path_factory):
    root, dataset = world
    out = tmp_path_factory.mktemp("mixture")
    st = Stage(kind="reward_model", data="generated", rewards=[], args=RM_ARGS)
    pairs = opposed_pairs(root)
    summary = run_stage(st, str(root / "model"), dataset, None, 0, out, "fp", upstream={"pairs": pairs})
    return out, summary, st, pairs


def test_em_finds_the_two_groups_of_labelers(mixture):
    out, summary, _, _ = mixture
    info = json.loads((out / "model" / "mixture.json").read_text())
    assert sorted(sorted(g["labelers"]) for g in info["groups"]) == [[0, 1, 2, 3], [4, 5]]
    assert summary["num_groups"] == 2 and json.loads((out / "train.json").read_text())["kind"] == "reward_model"
    assert [h["step"] for h in info["history"]][0] == 0 and all(g["std"] > 0 for g in info["groups"])
    for k, g in enumerate(info["groups"]):  # each group's model prefers what its own labelers chose
        fn = REWARDS.get("learned_reward").build(model=str(out / "model" / f"group{k}"))
        s11, s99 = fn(["11", "99"], ["1+2=", "1+2="])
        assert (s11 > s99) == (0 in g["labelers"])


def test_em_resumes_without_refitting_what_is_done(mixture, world, monkeypatch):
    out, summary, st, pairs = mixture
    root, dataset = world
    from harness.stages.trainers import reward

    monkeypatch.setattr(reward, "reward_trainer", lambda *a, **k: pytest.fail("refitted a finished model"))
    again = run_stage(st, str(root / "model"), dataset, None, 0, out, "fp", upstream={"pairs": pairs})
    assert again["groups"] == summary["groups"]


def test_worst_group_reward_rewards_the_batch_with_the_worst_served_groups_scores(mixture):
    out, _, _, _ = mixture
    info = json.loads((out / "model" / "mixture.json").read_text())
    fn = REWARDS.get("worst_group_reward").build(model=str(out / "model"))
    logged = {}
    completions, prompts = ["11", "11", "99", "11"], ["1+2="] * 4
    got = fn(completions, prompts=prompts, log_metric=lambda k, v: logged.setdefault(k, v))
    z = []
    for k, g in enumerate(info["groups"]):  # standardized by hand from each group's own model
        raw = REWARDS.get("learned_reward").build(model=str(out / "model" / f"group{k}"))(completions, prompts)
        z.append([(x - g["mean"]) / g["std"] for x in raw])
    worst = min(range(2), key=lambda k: sum(z[k]))
    assert got == pytest.approx(z[worst]) and logged["worst_group/index"] == worst
    minority = next(k for k, g in enumerate(info["groups"]) if 4 in g["labelers"])
    assert worst == minority  # a batch of mostly `11` serves the `99` group worst


def test_grpo_on_the_worst_group_reward_trains(world, mixture, tmp_path):
    from tests.test_stages import grpo_on_scorer

    logged = [h for h in grpo_on_scorer(world, "worst_group_reward", mixture[0] / "model", tmp_path, "pool")
              if "worst_group/index" in h]  # fmt: skip
    assert logged and logged[0]["worst_group/index"] in (0.0, 1.0)


def test_mixture_needs_labelers_on_the_pairs(world, tmp_path):
    root, dataset = world
    folder = tmp_path / "pairs"
    folder.mkdir()
    (folder / "pairs.jsonl").write_text(json.dumps({"id": 0, "prompt": "1+1=", "chosen": "2", "rejected": "3"}) + "\n")
    st = Stage(kind="reward_model", data="generated", rewards=[], args=RM_ARGS)
    with pytest.raises(ValueError, match="no `labeler`"):
        run_stage(st, str(root / "model"), dataset, None, 0, tmp_path / "rm", "fp", upstream={"pairs": str(folder)})


# ----------------------------------------------------------------------------- evaluation judges
def test_judges_score_every_evaluation_sample(world, tmp_path):
    root, _ = world
    judges = [JudgeSpec("right", [RewardSpec("exact_match")]),
              JudgeSpec("short", [RewardSpec("length", args={"max_chars": 3}), RewardSpec("format", weight=0.5)])]  # fmt: skip
    cfg = EvalConfig(tasks=["toy_arith"], n_samples=4, max_new_tokens=4, batch_size=64, limit=8, judges=judges)
    result = evaluate(str(root / "model"), cfg, 0, tmp_path / "eval", str(root / "data"))
    m = result["metrics"]["toy_arith"]
    samples = [json.loads(x) for x in (tmp_path / "eval" / "samples.jsonl").read_text().splitlines()]
    flat = [(r, s["target"]) for s in samples for r in s["responses"]]
    right = sum(is_correct(r, t) for r, t in flat) / len(flat)
    short = sum((1 - min(len(r), 3) / 3) + 0.5 * any(ch.isdigit() for ch in r) for r, _ in flat) / len(flat)
    assert m["judge/right"] == pytest.approx(right) and m["judge/right"] == pytest.approx(m["pass@1"])
    assert m["judge/short"] == pytest.approx(short)
    assert m["judge/min"] == pytest.approx(min(right, short))
    assert result["protocol"]["judges"][1]["name"] == "short"
    assert judge_metrics(judges[:1], [["1"]], ["1"], [""], [0]) == {"judge/right": 1.0}  # one judge: no min


def test_suites_without_judges_keep_their_fingerprints():
    from harness.config.plain import plain_eval

    assert "judges" not in plain_eval(EvalConfig(tasks=["toy_arith"]))
    assert plain_eval(EvalConfig(tasks=["toy_arith"], judges=[JudgeSpec("a", [RewardSpec("format")])]))["judges"]


def test_pairs_are_read_back_with_their_labeler(tmp_path):
    from harness.stages.generate import read_pairs

    (tmp_path / "pairs.jsonl").write_text(
        json.dumps({"prompt": "p", "chosen": "a", "rejected": "b", "labeler": 3}) + "\n"
    )
    assert read_pairs(tmp_path).to_list()[0]["labeler"] == 3


@pytest.mark.parametrize("scale", ["toy", "paper"])
def test_the_bundles_labeler_groups_are_the_groups_its_evaluation_judges(scale):
    """The user groups are written twice (the labelers in the bundle, the judges in the eval suite): same rewards."""
    from harness.config.load import load_paper
    from harness.config.plain import to_plain

    rp = load_paper("maxmin-rlhf", scale)
    judges = {j.name: [{k: r[k] for k in ("name", "weight", "args")} for r in to_plain(j)["rewards"]]
              for j in rp.eval.judges}  # fmt: skip
    seen = 0
    for v in rp.variants.values():
        for st in v.stages:
            for r in st.rewards:
                if r.name == "user_mixture":
                    groups = {g["name"]: g["rewards"] for g in r.args["groups"]}
                    norm = {n: [{"name": x["name"], "weight": x.get("weight", 1.0), "args": x.get("args", {})}
                                for x in rs] for n, rs in groups.items()}  # fmt: skip
                    assert norm == judges
                    seen += 1
    assert seen == 2  # the generate stage of each of the two trained variants


def test_worst_group_reward_without_a_mixture_says_what_it_needs(tmp_path):
    fn = REWARDS.get("worst_group_reward").build(model=str(tmp_path))
    with pytest.raises(ValueError, match="num_groups >= 2"):
        fn(["1"], prompts=["1+0="])
