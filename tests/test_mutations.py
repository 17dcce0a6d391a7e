"""Mistaken bundles, as mutations of a shipped one: each is refused with a ConfigError naming the bundle file
and the key at fault (never a traceback, never accepted), or accepted because it is legal. Also the checked
`snakemake --config` keys and the seeds override."""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable

import pytest
import yaml

from harness.config.errors import ConfigError
from harness.config.load import load_paper
from harness.layout import PAPERS
from harness.plan import Plan
from harness.validate import validate_paper, validation_site
from tests.conftest import run_snakemake, write_bundle

SOURCE = yaml.safe_load((PAPERS / "ttrl-majority-vote" / "paper.yaml").read_text())
"""A shipped bundle with a base, GRPO variants and per-scale settings: what the mutations start from."""
GOLD = "gold_grpo"


def gold(b: dict) -> dict:
    return b["variants"][GOLD]["stages"][0]


def toy(b: dict) -> dict:
    return b["scales"].setdefault("toy", {}) or b["scales"].__setitem__("toy", {}) or b["scales"]["toy"]


def rename(b: dict, new: str) -> None:
    b["variants"][new] = b["variants"].pop(GOLD)
    for scale in (b.get("scales") or {}).values():  # a scale's changes to the variant's stages, keyed by its name
        changes = (scale or {}).get("stages") or {}
        for key in [k for k in changes if k.startswith(GOLD + ".")]:
            changes[new + key[len(GOLD) :]] = changes.pop(key)
    b["sources"] = {k.replace(f"stages.{GOLD}.", f"stages.{new}.").replace(f"variants.{GOLD}.", f"variants.{new}."): v
                    for k, v in (b.get("sources") or {}).items()}  # fmt: skip
    b["claims"] = [c for c in b.get("claims", []) if GOLD not in (c.get("lhs"), c.get("rhs"))]
    b["reported"] = [r for r in b.get("reported", []) if r.get("variant") != GOLD]


REFUSED: list[tuple[str, Callable[[dict], object], str, str]] = [
    ("lr-zero", lambda b: gold(b).setdefault("args", {}).update(learning_rate=0), "args.learning_rate", "greater than 0"),
    ("lr-negative", lambda b: gold(b).setdefault("args", {}).update(learning_rate=-1e-6), "args.learning_rate", ""),
    ("lr-nan", lambda b: gold(b).setdefault("args", {}).update(learning_rate=math.nan), "args.learning_rate", "finite"),
    ("lr-inf", lambda b: gold(b).setdefault("args", {}).update(learning_rate=math.inf), "args.learning_rate", "finite"),
    ("one-generation", lambda b: gold(b).setdefault("args", {}).update(num_generations=1), "args.num_generations",
     "at least 2"),
    ("zero-steps", lambda b: gold(b).setdefault("args", {}).update(max_steps=0), "args.max_steps", "at least 1"),
    ("zero-batch", lambda b: gold(b).setdefault("args", {}).update(per_device_train_batch_size=0),
     "args.per_device_train_batch_size", ""),
    ("zero-temperature", lambda b: gold(b).setdefault("args", {}).update(temperature=0), "args.temperature", ""),
    ("zero-save-steps", lambda b: gold(b).setdefault("args", {}).update(save_steps=0), "args.save_steps", ""),
    ("no-seeds", lambda b: toy(b).update(seeds=[]), "scales.toy.seeds", "must not be empty"),
    ("negative-seed", lambda b: toy(b).update(seeds=[-1]), "scales.toy.seeds", "at least 0"),
    ("repeated-seed", lambda b: toy(b).update(seeds=[0, 0]), "scales.toy.seeds", "must not repeat"),
    ("negative-time", lambda b: toy(b).update(resources={"train": {"time_min": -5}}),
     "scales.toy.resources.train.time_min", ""),
    ("zero-memory", lambda b: toy(b).update(resources={"evaluate": {"mem_gb": 0}}),
     "scales.toy.resources.evaluate.mem_gb", ""),
    ("variant-escapes", lambda b: rename(b, "../../etc"), "variants.../../etc", "cannot name a variant"),
    ("variant-dotdot", lambda b: rename(b, ".."), "variants...", "cannot name a variant"),
    ("variant-slash", lambda b: rename(b, "a/b"), "variants.a/b", "cannot name a variant"),
    ("variant-home", lambda b: rename(b, "~root"), "variants.~root", "cannot name a variant"),
    ("variant-empty", lambda b: rename(b, ""), "variants.", "cannot name a variant"),
    ("model-escapes", lambda b: toy(b).update(model="../models/toy-arith"), "scales.toy.model", "cannot name a model"),
    ("eval-escapes", lambda b: toy(b).update(eval="../eval/toy-arith"), "scales.toy.eval", "cannot name a eval"),
    ("million-rounds", lambda b: b["variants"][GOLD].update(rounds={"count": 1_000_000, "stages": [gold(b)]}),
     f"variants.{GOLD}.rounds.count", "at most 100"),
    ("negative-tolerance", lambda b: b["reported"][0].update(tolerance=-0.1), "reported.0.tolerance", ""),
    ("top-p-above-one", lambda b: b["reported"][0].update(top_p=1.5), "reported.0.top_p", "at most 1"),
    ("variants-as-list", lambda b: b.update(variants=[]), "variants", "expected a mapping"),
    ("extends-with-own-stages", lambda b: b["variants"].update(more={"extends": GOLD, "stages": [gold(b)]}),
     "variants.more.stages", f"more extends {GOLD} and lists stages of its own, which replace {GOLD}'s"),
    ("stages-as-mapping", lambda b: b["variants"][GOLD].update(stages={"kind": "grpo"}), f"variants.{GOLD}.stages",
     "expected a list"),
    ("args-as-list", lambda b: gold(b).update(args=[1]), f"variants.{GOLD}.stages.0.args", "expected a mapping"),
    ("variant-null", lambda b: b["variants"].update({GOLD: None}), f"variants.{GOLD}", "must not be null"),
    ("claim-metric-typo", lambda b: b["claims"][0].update(metric="acuracy"), "claims.0.metric", "unknown metric"),
    ("claim-pass-at-0", lambda b: b["claims"][0].update(metric="pass@0"), "claims.0.metric", "unknown metric"),
    ("claim-unknown-scale", lambda b: b["claims"][0].update(scale="huge"), "claims.0.scale", "no scale 'huge'"),
    ("reported-rate-above-one", lambda b: b["reported"][0].update(value=16.4), "reported.0.value", "fraction"),
    ("no-variants", lambda b: b.update(variants={}, claims=[], reported=[]), "variants", "at least one variant"),
    ("model-name-5000-chars", lambda b: toy(b).update(model="m" * 5000), "scales.toy.model", "5000 characters"),
    ("lr-above-one", lambda b: gold(b).setdefault("args", {}).update(learning_rate=1e12), "args.learning_rate",
     "at most 1"),
    ("piece-arg-as-text", lambda b: gold(b).update(objective={"aux": [{"name": "entropy_bonus", "args": {"coef": "${x}"}}]}),
     f"variants.{GOLD}.stages.0.objective.aux.0.args.coef", "expected a number"),
    ("piece-arg-nan", lambda b: gold(b).update(objective={"aux": [{"name": "entropy_bonus", "args": {"coef": math.nan}}]}),
     f"variants.{GOLD}.stages.0.objective.aux.0.args.coef", "finite"),
    ("masked-span-one-tag", lambda b: gold(b).update(objective={"masked_spans": [["<information>"]]}),
     f"variants.{GOLD}.stages.0.objective.masked_spans.0", "[open, close] pair"),
    ("reward-arg-wrong-type", lambda b: gold(b).update(rewards=[{"name": "length", "args": {"max_chars": "ten"}}]),
     f"variants.{GOLD}.stages.0.rewards.0.args.max_chars", "expected an integer"),
    ("labelers-beyond-memory", lambda b: gold(b).update(rewards=[{"name": "user_mixture", "args": {"groups": [
        {"name": "a", "users": 10**12, "rewards": [{"name": "format"}]}]}}]),
     f"variants.{GOLD}.stages.0.rewards.0.args", "groups.0.users: expected a whole number from 1 to 100000"),
    ("claim-threshold-nan", lambda b: b["claims"][0].update(lhs="base", rhs="nan"), "claims.0.rhs", "finite number"),
    ("claim-threshold-not-a-rate", lambda b: b["claims"][0].update(lhs="base", rhs="16.4"), "claims.0.rhs",
     "fraction in [0, 1]"),
    ("improvement-over-a-number", lambda b: b["claims"][0].update(rhs="0.5"), "claims.0.rhs",
     "not with a number"),
    ("variant-at-unknown-scale", lambda b: b["variants"][GOLD].update(scales=["toy", "huge"]),
     f"variants.{GOLD}.scales.1", "no scale 'huge'"),
    ("reported-metric-typo", lambda b: b["reported"][0].update(metric="pass1"), "reported.0.metric", "unknown metric"),
    ("no-scales", lambda b: b.update(scales={}), "scales", "at least one scale"),
    ("no-paper-block", lambda b: b.pop("paper"), "paper", "required"),
    ("empty-dataset-name", lambda b: gold(b).update(dataset=""), f"variants.{GOLD}.stages.0.dataset", "cannot name"),
    ("gain-over-unknown-variant", lambda b: b["reported"][0].update(over="basee"), "reported.0.over", "no variant"),
    ("gain-over-itself", lambda b: b["reported"][0].update(over=b["reported"][0]["variant"]), "reported.0.over",
     "over itself"),
    ("gain-beyond-one", lambda b: b["reported"][0].update(over="base", value=24), "reported.0.value", "[-1, 1]"),
    ("unknown-checkpoint-rule", lambda b: b["reported"][0].update(checkpoint="best"), "reported.0.checkpoint",
     "unknown rule 'best'"),
    ("train-and-eval-prompts-differ", lambda b: gold(b).setdefault("args", {}).update(apply_chat_template=True),
     f"variants.{GOLD}.stages.0.args.apply_chat_template", "say why they differ in scales.toy.prompt_differs"),
    ("source-of-no-setting", lambda b: b.update(sources={"scales.paper.trainers.grpo.lr": "Table 4"}),
     "sources.scales.paper.trainers.grpo.lr", "names no setting"),
    ("deviation-at-unknown-scale", lambda b: b.update(deviations=[{"field": "kl", "paper": "0.001", "ours": "0",
                                                                    "why": "x", "scale": "huge"}]),
     "deviations.0.scale", "no scale 'huge'"),
    ("deviation-missing-why", lambda b: b.update(deviations=[{"field": "kl", "paper": "0.001", "ours": "0"}]),
     "deviations.0.why", "required"),
    ("regraded-by-an-unknown-reward", lambda b: toy(b).update(rewards={"exact_match": "math_verfy"}),
     "scales.rewards.exact_match", "did you mean 'math_verify'"),
    ("regraded-by-a-group-reward", lambda b: toy(b).update(rewards={"exact_match": "majority_vote"}),
     "scales.rewards.exact_match", "cannot stand in"),
    ("a-stage-asks-otherwise", lambda b: (toy(b).update(instruction="Answer with a number."),
                                          gold(b).setdefault("args", {}).update(instruction="Think first.")),
     f"variants.{GOLD}.stages.0.args.instruction", "say why they differ in scales.toy.prompt_differs"),
    ("repeat-a-billion", lambda b: gold(b).update(data_args={"repeat": 10**9}), "data_args.repeat", "at most 10000"),
]  # fmt: skip


def load_all_scales(tmp_path, bundle: dict) -> None:
    """What `harness validate p` runs."""
    write_bundle(tmp_path / "papers", "p", yaml.safe_dump(bundle, sort_keys=False, allow_unicode=True))
    validate_paper("p", tmp_path / "papers", None, *validation_site("local", None))


@pytest.mark.parametrize(("mutate", "key", "fragment"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_a_mistaken_bundle_is_refused_naming_the_file_and_the_key(tmp_path, mutate, key, fragment):
    bundle = copy.deepcopy(SOURCE)
    mutate(bundle)
    with pytest.raises(ConfigError) as info:
        load_all_scales(tmp_path, bundle)
    assert info.value.file == str(tmp_path / "papers" / "p" / "paper.yaml"), str(info.value)
    assert info.value.key.endswith(key), str(info.value)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [(b"paper: {title: \xff\xfe}\n", "not UTF-8"), (b"paper: {title: [\n", "not valid YAML")],
    ids=["not-utf8", "bad-yaml"],
)
def test_an_unreadable_bundle_is_refused_naming_the_file(tmp_path, raw, fragment):
    file = tmp_path / "papers" / "p" / "paper.yaml"
    file.parent.mkdir(parents=True)
    file.write_bytes(raw)
    with pytest.raises(ConfigError) as info:
        load_paper("p", "toy", papers_dir=tmp_path / "papers")
    assert info.value.file == str(file) and fragment in str(info.value)


def test_every_metric_an_evaluation_writes_can_be_claimed():
    from harness.config.claims import CLAIM_METRICS
    from harness.evaluation.metrics import COUNTS, summarize

    written = summarize([["1", "2", None, "1"], ["3", "3", "3", "4"]], ["1", "3"], [["a b"] * 4, ["c"] * 4])
    assert len(written) > 10
    assert [m for m in written if m not in COUNTS and not CLAIM_METRICS.fullmatch(m)] == []
    assert CLAIM_METRICS.fullmatch("judge/terse") and not CLAIM_METRICS.fullmatch("pass@0")


ACCEPTED: list[tuple[str, Callable[[dict], object]]] = [
    ("unchanged", lambda b: None),
    ("interpolation-syntax-in-prose", lambda b: b["variants"][GOLD].update(description="costs ${price}, see $HOME")),
    ("dotted-variant-name", lambda b: rename(b, "gold.v2-b_1")),
    ("tiny-learning-rate", lambda b: gold(b).setdefault("args", {}).update(learning_rate=1e-9)),
    ("two-generations", lambda b: gold(b).setdefault("args", {}).update(num_generations=2)),
    ("the-base-against-a-threshold", lambda b: b["claims"][0].update(lhs="base", op="<", rhs="0.9")),
    ("a-negative-gain-over-the-base", lambda b: b["reported"][0].update(over="base", value=-0.05)),
    (
        "prompts-differ-on-purpose",
        lambda b: (
            gold(b).setdefault("args", {}).update(apply_chat_template=True),
            toy(b).update(prompt_differs="the base has no chat template"),
        ),
    ),
    ("hundred-rounds", lambda b: b["variants"][GOLD].update(rounds={"count": 100, "stages": [gold(b)]})),
]


@pytest.mark.parametrize("mutate", [c[1] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_a_legal_variation_is_accepted(tmp_path, mutate):
    bundle = copy.deepcopy(SOURCE)
    mutate(bundle)
    load_all_scales(tmp_path, bundle)


def test_the_seeds_override_selects_the_runs_and_is_checked():
    plan = Plan(["ttrl-majority-vote"], "toy", seeds=[1])
    assert {run.seed for run in plan.runs("ttrl-majority-vote")} == {1}
    with pytest.raises(ConfigError) as info:
        Plan(["ttrl-majority-vote"], "toy", seeds=[])
    assert info.value.key == "seeds" and "must not be empty" in str(info.value)


def test_snakemake_refuses_an_unknown_config_key_and_takes_seeds_and_variants(tmp_path):
    (tmp_path / "papers").mkdir()
    write_bundle(tmp_path / "papers", "p", yaml.safe_dump(SOURCE, sort_keys=False))
    bad = run_snakemake(tmp_path, "-n", check=False, config=("papers=p", "seed=0"))
    assert bad.returncode != 0
    assert "seed: unknown key; did you mean 'seeds'?" in bad.stdout + bad.stderr
    out = run_snakemake(tmp_path, "-n", "-p", config=("papers=p", "seeds=[2]")).stdout
    assert "seed2" in out and "seed0" not in out and "--seeds 2 " in out
    # a cut: one seed of two variants; every job (the summary too) is told which
    out = run_snakemake(
        tmp_path, "-n", "-p", config=("papers=p", "seeds=[0]", "variants=[base_weak,majority_vote_weak]")
    )
    ran = set(re.findall(r"--variant (\w+)", out.stdout))
    assert ran == {"base_weak", "majority_vote_weak"} and "--variants base_weak,majority_vote_weak " in out.stdout
    assert "results/world/models/toy-arith-weak/pretrain.json" in out.stdout
    assert "results/world/models/toy-arith/pretrain.json" not in out.stdout  # no variant of the cut needs it
    bad = run_snakemake(tmp_path, "-n", check=False, config=("papers=p", "variants=[base,bsae]"))
    assert bad.returncode != 0
    assert "variants: 'bsae' is a variant of none of p at this scale (known: base, " in bad.stdout + bad.stderr


def test_a_scale_grades_exact_match_as_the_paper_does():
    by_scale = {s: Plan(["ttrl-majority-vote"], s).papers["ttrl-majority-vote"] for s in ("toy", "small-real", "paper")}
    names = {s: rp.variants[GOLD].stages[0].rewards[0].name for s, rp in by_scale.items()}
    assert names == {"toy": "exact_match", "small-real": "math_verify", "paper": "math_verify"}
    assert {s: rp.eval.answer_extractor for s, rp in by_scale.items()} == {
        "toy": "boxed_or_last_number", "small-real": "math_verify", "paper": "math_verify"}  # fmt: skip


def test_a_scale_instruction_is_asked_in_training_and_in_evaluation(tmp_path):
    from harness.stages.data import with_instruction

    bundle = copy.deepcopy(SOURCE)
    toy(bundle).update(instruction="Put the final answer within \\boxed{}.")
    write_bundle(tmp_path / "papers", "p", yaml.safe_dump(bundle, sort_keys=False))
    rp = load_paper("p", "toy", papers_dir=tmp_path / "papers")
    assert rp.eval.instruction == "Put the final answer within \\boxed{}."
    assert rp.variants[GOLD].stages[0].args["instruction"] == rp.eval.instruction
    plain = Plan(["ttrl-majority-vote"], "toy").papers["ttrl-majority-vote"]  # without one: none anywhere
    assert plain.variants[GOLD].stages[0].args["instruction"] is None and plain.eval.instruction is None
    import datasets

    rows = with_instruction(datasets.Dataset.from_list([{"prompt": "2+3="}]), rp.eval.instruction)
    assert rows[0]["prompt"] == "2+3=\n\nPut the final answer within \\boxed{}."
