"""harness.plan: fingerprints, runs and targets, on bundles written to a temp papers dir."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from harness.config.errors import ConfigError
from harness.config.plain import fingerprint
from harness.config.selection import select_papers
from harness.layout import Run, leaderboard_file
from harness.plan import Plan

BUNDLE = {
    "paper": {"title": "a test paper"},
    "variants": {
        "base": {"stages": []},
        "gold": {"stages": [{"kind": "grpo", "data": "train", "rewards": [{"name": "exact_match"}]}]},
        "vote": {
            "stages": [
                {"kind": "sft", "data": "train"},
                {"kind": "grpo", "data": "pool", "rewards": [{"name": "majority_vote"}]},
            ]
        },
        "vote_weak": {"extends": "vote", "model": "toy-arith-weak", "scales": ["toy"]},
    },
    "scales": {"toy": {}, "paper": {}},
}


def write(papers_dir: Path, slug: str, bundle: dict) -> None:
    file = papers_dir / slug / "paper.yaml"
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(yaml.safe_dump(bundle, sort_keys=False))


@pytest.fixture
def papers(tmp_path) -> Path:
    write(tmp_path / "papers", "p", BUNDLE)
    return tmp_path / "papers"


# --------------------------------------------------------------------------- fingerprint


def test_fingerprint_is_stable_and_short():
    obj = {"a": 1, "b": [1, 2], "c": {"d": None}}
    fp = fingerprint(obj)
    assert fp == fingerprint(copy.deepcopy(obj))
    assert len(fp) == 16 and all(ch in "0123456789abcdef" for ch in fp)


def test_fingerprint_ignores_dict_order_only():
    assert fingerprint({"a": 1, "b": {"x": 1, "y": 2}}) == fingerprint({"b": {"y": 2, "x": 1}, "a": 1})
    assert fingerprint([1, 2]) != fingerprint([2, 1])  # list order is meaning (stages, seeds)
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
    assert fingerprint({"a": 1}) != fingerprint({"a": "1"})


# --------------------------------------------------------------------------- runs and targets


def test_runs_are_variants_times_seeds(papers):
    plan = Plan(None, "toy", papers_dir=papers)
    runs = plan.runs("p")
    assert len(runs) == 4 * 3  # 4 variants x seeds [0, 1, 2] of configs/scales/toy.yaml
    assert len(set(runs)) == len(runs)
    assert {r.variant for r in runs} == {"base", "gold", "vote", "vote_weak"}
    assert Run("p", "toy", "gold", 2) in runs
    assert plan.run("p", "gold", "2") == Run("p", "toy", "gold", 2)  # wildcards arrive as strings


def test_runs_follow_the_papers_seeds(papers):
    write(papers, "p", BUNDLE | {"scales": {"toy": {"seeds": [4, 7]}}})
    runs = Plan(None, "toy", papers_dir=papers).runs("p")
    assert len(runs) == 4 * 2
    assert {r.seed for r in runs} == {4, 7}


def test_toy_only_variant_is_absent_at_paper_scale(papers):
    runs = Plan(None, "paper", papers_dir=papers).runs("p")
    assert {r.variant for r in runs} == {"base", "gold", "vote"}
    assert len(runs) == 3 * 1  # seeds [0] at paper scale
    assert all(r.scale == "paper" for r in runs)


def test_targets_one_leaderboard_per_paper(papers):
    write(papers, "q", BUNDLE)
    plan = Plan(None, "toy", papers_dir=papers)
    assert plan.targets() == ["results/runs/p/toy/leaderboard.json", "results/runs/q/toy/leaderboard.json"]
    assert plan.targets()[0] == leaderboard_file("p", "toy")
    assert Plan(["q"], "toy", papers_dir=papers).targets() == ["results/runs/q/toy/leaderboard.json"]


# --------------------------------------------------------------------------- per-job fingerprints


def all_fingerprints(plan: Plan) -> dict[tuple, str]:
    out = {}
    for run in plan.runs("p"):
        for i in range(len(plan.papers["p"].variants[run.variant].stages)):
            out[("stage", run.variant, run.seed, i)] = plan.stage_fingerprint(run, i)
        out[("eval", run.variant, run.seed)] = plan.eval_fingerprint(run)
    return out


def test_fingerprints_are_reproducible(papers):
    assert all_fingerprints(Plan(None, "toy", papers_dir=papers)) == all_fingerprints(
        Plan(None, "toy", papers_dir=papers)
    )


def test_fingerprints_differ_between_seeds_and_stages(papers):
    plan = Plan(None, "toy", papers_dir=papers)
    fps = all_fingerprints(plan)
    assert fps[("stage", "vote", 0, 0)] != fps[("stage", "vote", 1, 0)]
    assert fps[("stage", "vote", 0, 0)] != fps[("stage", "vote", 0, 1)]
    # vote_weak has vote's stages but another base model
    assert fps[("stage", "vote", 0, 0)] != fps[("stage", "vote_weak", 0, 0)]


def test_learning_rate_change_touches_only_that_variants_stages(papers):
    before = all_fingerprints(Plan(None, "toy", papers_dir=papers))
    changed = copy.deepcopy(BUNDLE)
    changed["variants"]["gold"]["stages"][0]["args"] = {"learning_rate": 3.0e-5}
    write(papers, "p", changed)
    after = all_fingerprints(Plan(None, "toy", papers_dir=papers))

    assert before.keys() == after.keys()
    differs = {k for k in before if before[k] != after[k]}
    assert differs == {("stage", "gold", s, 0) for s in (0, 1, 2)}
    # the other variants' stages and every eval job keep their fingerprints (gold's eval re-runs
    # because its input, the stage's model, changes, not because its params do)


def test_paper_scale_trainer_change_touches_every_grpo_stage_and_no_eval(papers):
    before = all_fingerprints(Plan(None, "toy", papers_dir=papers))
    write(papers, "p", BUNDLE | {"scales": {"toy": {"trainers": {"grpo": {"max_steps": 9}}}, "paper": {}}})
    after = all_fingerprints(Plan(None, "toy", papers_dir=papers))
    differs = {k for k in before if before[k] != after[k]}
    grpo = {("stage", "gold", s, 0) for s in (0, 1, 2)} | {
        ("stage", v, s, 1) for v in ("vote", "vote_weak") for s in (0, 1, 2)
    }
    assert differs == grpo  # the sft stages (vote*, stage 0) and the evals are untouched


def test_track_and_summary_fingerprints_follow_their_config(papers):
    plan = Plan(None, "toy", papers_dir=papers)
    track = {v: plan.track_fingerprint(plan.run("p", v, 0)) for v in plan.papers["p"].variants}
    summary = plan.summary_fingerprint("p")
    write(papers, "p", BUNDLE | {"claims": [{"statement": "s", "lhs": "gold", "op": ">", "rhs": "base"}]})
    plan2 = Plan(None, "toy", papers_dir=papers)
    assert plan2.summary_fingerprint("p") != summary
    assert {v: plan2.track_fingerprint(plan2.run("p", v, 0)) for v in plan2.papers["p"].variants} == track


# ----------------------------------------------------------------------------- paper selection


def _papers_dir(tmp_path, sets: str | None):
    for slug in ("a", "b", "c"):
        (tmp_path / slug).mkdir(parents=True)
        (tmp_path / slug / "paper.yaml").write_text("paper: {title: x}\n")
    if sets is not None:
        (tmp_path / "sets.yaml").write_text(sets)
    return tmp_path


def test_default_selection_is_the_default_set_else_every_paper(tmp_path):
    with_sets = _papers_dir(tmp_path / "s", "default: [b]\nfew: [c, a]\n")
    assert select_papers(None, with_sets) == ["b"]
    assert select_papers("@few", with_sets) == ["c", "a"]
    assert select_papers("all", with_sets) == ["a", "b", "c"]
    assert select_papers("b,@few,b", with_sets) == ["b", "c", "a"]
    assert select_papers(["a"], with_sets) == ["a"]
    assert select_papers(None, _papers_dir(tmp_path / "n", None)) == ["a", "b", "c"]


def test_unknown_set_is_refused_with_the_file(tmp_path):
    d = _papers_dir(tmp_path, "default: [b]\n")
    with pytest.raises(ConfigError, match=r"sets.yaml: nope: no paper set 'nope' \(known: default\)"):
        select_papers("@nope", d)


def test_all_at_a_scale_means_every_paper_that_defines_it(tmp_path):
    d = _papers_dir(tmp_path, None)
    (d / "b" / "paper.yaml").write_text("paper: {title: x}\nscales: {toy: {}, small-real: {}}\n")
    (d / "c" / "paper.yaml").write_text("paper: {title: x}\nscales: {toy: {}}\n")
    assert select_papers("all", d, "small-real") == ["b"]
    assert select_papers("all", d, "toy") == ["b", "c"]
    assert select_papers("a,all", d, "small-real") == ["a", "b"]  # a named paper is kept (and refused later)
    with pytest.raises(ConfigError, match="papers=all: no paper defines scale 'paper'"):
        select_papers("all", d, "paper")


GOLDEN = {  # fingerprints of shipped configs that existing results were computed under
    ("datasets", "toy-arith"): "9304fb3fa13245c7",
    ("datasets", "toy-retrieval"): "913f4f48d5fdf7ed",  # readers, tool_share 0.5: a new toy searcher
    ("datasets", "deepscaler"): "4afb5145e40c7969",
    ("eval", "toy-arith"): "21dc42ccfbe8f408",
    ("eval", "toy-retrieval"): "005caaa6aec17ae0",
    ("eval", "math-reasoning"): "f4e96cda9fa37a55",
}


@pytest.mark.parametrize(("kind", "name"), sorted(GOLDEN), ids=[f"{k}/{n}" for k, n in sorted(GOLDEN)])
def test_a_new_config_field_leaves_existing_fingerprints_alone(kind, name):
    """A field added to DatasetConfig or EvalConfig must stay out of the hash while unset (LATER_DATASET_FIELDS,
    LATER_EVAL_FIELDS in harness/config/plain.py), or every result computed before it goes stale."""
    from harness.config.plain import plain_dataset, plain_eval
    from harness.config.read import load_component
    from harness.layout import CONFIGS

    cfg = load_component(kind, name, CONFIGS / kind / f"{name}.yaml", "")
    plain = plain_dataset(cfg) if kind == "datasets" else plain_eval(cfg)
    assert fingerprint(plain) == GOLDEN[(kind, name)], f"configs/{kind}/{name}.yaml hashes differently: {plain}"
