"""harness.config: loading, layer merging, and every refusal (a ConfigError naming the file and the key)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from harness.config.components import DatasetConfig, EvalConfig
from harness.config.errors import ConfigError
from harness.config.load import load_paper
from harness.config.schema import ResolvedPaper
from harness.layout import CONFIGS, ROOT
from harness.stages.grpo import GRPOArgs

# The shape of papers/ttrl-majority-vote/paper.yaml, cut down to what the tests need.
BASE = {
    "paper": {"title": "a test paper"},
    "variants": {
        "base": {"description": "untrained", "stages": []},
        "gold": {
            "description": "gold reward",
            "stages": [
                {"kind": "grpo", "data": "train", "rewards": [{"name": "exact_match"}], "args": {"max_steps": 7}}
            ],
        },
        "vote": {
            "description": "majority vote",
            "stages": [{"kind": "grpo", "data": "pool", "rewards": [{"name": "majority_vote"}]}],
        },
        "vote_weak": {"extends": "vote", "model": "toy-arith-weak", "scales": ["toy"]},
    },
    "scales": {"toy": {"trainers": {"grpo": {"max_steps": 50, "temperature": 0.7}}}},
    "reported": [
        {"benchmark": "b", "metric": "pass@1", "value": 0.1, "variant": "vote", "model": "m", "source": "table 1"}
    ],
    "claims": [{"statement": "vote beats base", "lhs": "vote", "op": ">", "rhs": "base"}],
}


def write(tmp_path: Path, bundle: dict, slug: str = "p") -> Path:
    file = tmp_path / "papers" / slug / "paper.yaml"
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(yaml.safe_dump(bundle, sort_keys=False))
    return file


def load(tmp_path: Path, mutate: Callable[[dict], object] = lambda b: None, scale: str = "toy", **kw) -> ResolvedPaper:
    bundle = copy.deepcopy(BASE)
    mutate(bundle)
    write(tmp_path, bundle)
    return load_paper("p", scale, papers_dir=tmp_path / "papers", **kw)


def stage0(b: dict, variant: str = "gold") -> dict:
    return b["variants"][variant]["stages"][0]


# --------------------------------------------------------------------------- loading and merging


def test_base_bundle_loads(tmp_path):
    rp = load(tmp_path)
    assert list(rp.variants) == ["base", "gold", "vote", "vote_weak"]
    assert rp.seeds == [0, 1, 2]  # configs/scales/toy.yaml
    assert isinstance(rp.dataset, DatasetConfig) and isinstance(rp.eval, EvalConfig)
    assert set(rp.models) == {"toy-arith", "toy-arith-weak"}
    assert rp.variants["base"].stages == []


def test_extends_inherits_stages_and_overrides_model(tmp_path):
    rp = load(tmp_path)
    weak, vote = rp.variants["vote_weak"], rp.variants["vote"]
    assert weak.model == "toy-arith-weak" and vote.model == "toy-arith"
    assert weak.stages == vote.stages
    assert weak.stages[0].data == "pool" and weak.stages[0].rewards[0].name == "majority_vote"
    assert weak.description == "majority vote"  # inherited: vote_weak has none of its own


def test_extends_chain_inherits_model_and_stages(tmp_path):
    def mutate(b):
        b["variants"]["weaker"] = {"extends": "vote_weak", "description": "two links down"}

    rp = load(tmp_path, mutate)
    assert rp.variants["weaker"].model == "toy-arith-weak"  # from the middle link
    assert rp.variants["weaker"].stages[0].rewards[0].name == "majority_vote"  # from the base link


def test_stage_args_merge_scale_defaults_then_paper_then_stage(tmp_path):
    toy = yaml.safe_load((CONFIGS / "scales" / "toy.yaml").read_text())["trainers"]["grpo"]
    assert "num_iterations" not in toy  # so num_iterations below comes from the GRPOArgs dataclass
    rp = load(tmp_path)
    gold, vote = rp.variants["gold"].stages[0].args, rp.variants["vote"].stages[0].args
    assert gold["max_steps"] == 7  # stage args beat the paper's scales.toy (50) and the scale default
    assert vote["max_steps"] == 50  # paper's scales.toy beats configs/scales/toy.yaml
    assert gold["temperature"] == vote["temperature"] == 0.7  # paper's scales.toy
    assert gold["learning_rate"] == toy["learning_rate"]  # nobody overrides it: configs/scales/toy.yaml
    assert gold["num_iterations"] == GRPOArgs().num_iterations == 1
    assert set(gold) == set(GRPOArgs.__dataclass_fields__)


def test_command_line_overrides_are_the_last_layer_but_stage_args_still_win(tmp_path):
    rp = load(tmp_path, overrides=["seeds=[5]", "trainers.grpo.max_steps=3"])
    assert rp.seeds == [5]
    assert rp.variants["vote"].stages[0].args["max_steps"] == 3
    assert rp.variants["gold"].stages[0].args["max_steps"] == 7


def test_toy_only_variant_is_dropped_at_paper_scale(tmp_path):
    rp = load(tmp_path, lambda b: b["scales"].update(paper={}), scale="paper")
    assert "vote_weak" not in rp.variants and "vote" in rp.variants
    assert "toy-arith-weak" not in rp.models


def test_numeric_claim_rhs_is_accepted_for_an_untrained_variant(tmp_path):
    rp = load(tmp_path, lambda b: b["claims"][0].update(lhs="base", op="<", rhs="0.5"))
    assert rp.claims[0].rhs == "0.5"


def test_an_improvement_claim_needs_a_baseline_not_a_number(tmp_path):
    with pytest.raises(ConfigError, match="claims.0.rhs: a claim about trained variant 'vote'.*not with a number"):
        load(tmp_path, lambda b: b["claims"][0].update(rhs="0.5"))


def test_config_error_message_uses_path_relative_to_repo():
    err = ConfigError(ROOT / "papers" / "x" / "paper.yaml", "variants.a.stages", "bad")
    assert str(err) == "papers/x/paper.yaml: variants.a.stages: bad"
    assert err.key == "variants.a.stages"


def test_stage_resources_merge_onto_the_scale_defaults(tmp_path):
    def mutate(b):
        b["scales"]["toy"]["resources"] = {"train": {"cpus_per_task": 4, "time_min": 90}}
        stage0(b)["resources"] = {"gpus_per_node": 2}

    rp = load(tmp_path, mutate)
    gold, vote = rp.variants["gold"].stages[0].resources, rp.variants["vote"].stages[0].resources
    assert (gold.gpus_per_node, gold.cpus_per_task, gold.time_min) == (2, 4, 90)
    assert (vote.gpus_per_node, vote.cpus_per_task, vote.time_min) == (0, 4, 90)
    assert rp.eval_resources.time_min == 30  # the schema default: evaluate was not overridden


# --------------------------------------------------------------------------- refusals

REFUSALS = [
    # (id, mutation of BASE, dotted key, fragment of the message)
    ("unknown-top-level-key", lambda b: b.update(colour="red"), "colour", "colour"),
    ("unknown-variant-key", lambda b: b["variants"]["base"].update(stagez=[]), "variants.base.stagez", "stagez"),
    ("unknown-scale-key", lambda b: b["scales"]["toy"].update(gpus=8), "scales.toy.gpus", "gpus"),
    ("seeds-wrong-type", lambda b: b["scales"]["toy"].update(seeds="abc"), "scales.toy.seeds", ""),
    (
        "stage-arg-wrong-type",
        lambda b: stage0(b)["args"].update(learning_rate="fast"),
        "variants.gold.stages.0.args.learning_rate",
        "fast",
    ),
    ("unknown-stage-arg", lambda b: stage0(b)["args"].update(lr=1e-5), "variants.gold.stages.0.args.lr", "lr"),
    (
        "paper-scale-trainer-arg-wrong-type",
        lambda b: b["scales"]["toy"]["trainers"]["grpo"].update(max_steps="many"),
        "scales.toy.trainers.grpo.max_steps",
        "many",
    ),
    (
        "label-reward-on-pool",
        lambda b: stage0(b).update(data="pool"),
        "variants.gold.stages.0.rewards.0.name",
        "needs gold labels",
    ),
    ("unknown-trainer-kind", lambda b: stage0(b).update(kind="ppo"), "variants.gold.stages.0.kind", "'ppo'"),
    ("unknown-split", lambda b: stage0(b).update(data="test"), "variants.gold.stages.0.data", "'test'"),
    ("grpo-without-rewards", lambda b: stage0(b).update(rewards=[]), "variants.gold.stages.0.rewards", "reward"),
    ("unknown-model", lambda b: b["scales"]["toy"].update(model="gpt-9"), "scales.toy.model", "'gpt-9'"),
    ("unknown-dataset", lambda b: b["scales"]["toy"].update(dataset="nope"), "scales.toy.dataset", "'nope'"),
    ("unknown-eval", lambda b: b["scales"]["toy"].update(eval="nope"), "scales.toy.eval", "'nope'"),
    ("unknown-variant-model", lambda b: b["variants"]["base"].update(model="gpt-9"), "variants.base.model", "gpt-9"),
    ("no-scale", lambda b: b["scales"].pop("toy"), "scales", "needs at least one scale"),
    ("extends-missing", lambda b: b["variants"]["vote"].update(extends="ghost"), "variants.vote.extends", "'ghost'"),
    (
        "extends-cycle",
        lambda b: (b["variants"]["gold"].update(extends="vote"), b["variants"]["vote"].update(extends="gold")),
        "variants.gold.extends",
        "cycle",
    ),
    ("claim-unknown-op", lambda b: b["claims"][0].update(op="=="), "claims.0.op", "'=='"),
    ("claim-unknown-lhs", lambda b: b["claims"][0].update(lhs="ghost"), "claims.0.lhs", "'ghost'"),
    ("claim-unknown-rhs", lambda b: b["claims"][0].update(rhs="ghost"), "claims.0.rhs", "'ghost'"),
    ("reported-unknown-variant", lambda b: b["reported"][0].update(variant="ghost"), "reported.0.variant", "ghost"),
    ("missing-title", lambda b: b["paper"].pop("title"), "paper.title", "title"),
    (
        "unknown-resource",
        lambda b: b["scales"]["toy"].update(resources={"train": {"gpu": 1}}),
        "scales.toy.resources.train.gpu",
        "gpu",
    ),
    (
        "stage-resource-type",
        lambda b: stage0(b).update(resources={"time_min": "long"}),
        "variants.gold.stages.0.resources.time_min",
        "long",
    ),
    (
        "sft-on-pool",
        lambda b: stage0(b, "vote").update(kind="sft", rewards=[]),
        "variants.vote.stages.0.data",
        "labels",
    ),
    (
        "batch-not-whole-groups",
        lambda b: stage0(b).update(args={"per_device_train_batch_size": 12}),
        "variants.gold.stages.0.args",
        "not a multiple of num_generations=8",
    ),
    (
        "global-batch-not-whole-groups",
        lambda b: stage0(b).update(args={"global_batch_size": 100}),
        "variants.gold.stages.0.args",
        "batch of 100",
    ),
    (
        "unknown-advantage",
        lambda b: stage0(b).update(objective={"advantage": {"name": "virtual_maximum"}}),
        "variants.gold.stages.0.objective.advantage.name",
        "did you mean 'virtual_max'",
    ),
    (
        "unknown-loss-argument",
        lambda b: stage0(b).update(objective={"loss": {"name": "clipped_surrogate", "args": {"eps": 0.3}}}),
        "variants.gold.stages.0.objective.loss.args.eps",
        "known: epsilon_low, epsilon_high",
    ),
    (
        "missing-aux-argument",
        lambda b: stage0(b).update(objective={"aux": [{"name": "entropy_band", "args": {"low": 0.1, "coef": 1}}]}),
        "variants.gold.stages.0.objective.aux.0.args.high",
        "required",
    ),
    (
        "unknown-aggregation",
        lambda b: stage0(b).update(objective={"aggregation": "token_sum"}),
        "variants.gold.stages.0.objective.aggregation",
        "token_mean",
    ),
    (
        "label-reward-on-mixture",
        lambda b: stage0(b).update(data="mixture"),
        "variants.gold.stages.0.rewards.0.name",
        "unlabeled rows",
    ),
    (
        "label-noise-out-of-range",
        lambda b: stage0(b).update(data_args={"label_noise": 1.5}),
        "variants.gold.stages.0.data_args.label_noise",
        "at most 1, got 1.5",
    ),
    (
        "objective-on-sft",
        lambda b: stage0(b, "vote").update(
            kind="sft",
            data="train",
            rewards=[],
            objective={"aggregation": "token_mean", "aux": [{"name": "entropy_bonus", "args": {"coef": 1}}]},
        ),
        "variants.vote.stages.0.objective",
        "only grpo",
    ),
    (
        "unlabeled-outside-mixture",
        lambda b: stage0(b).update(data_args={"unlabeled": 5}),
        "variants.gold.stages.0.data_args.unlabeled",
        "mixture",
    ),
    ("curation-fraction", lambda b: stage0(b).update(data_args={"lowest_likelihood": 1.5}),
     "variants.gold.stages.0.data_args.lowest_likelihood", "at most 1, got 1.5"),
    ("curation-without-labels", lambda b: stage0(b, "vote").update(data_args={"lowest_likelihood": 0.5}),
     "variants.vote.stages.0.data_args.lowest_likelihood", "data: train"),
    ("curation-with-repeat", lambda b: stage0(b).update(data_args={"lowest_likelihood": 0.5, "repeat": 2}),
     "variants.gold.stages.0.data_args.lowest_likelihood", "repeat"),
    ("unknown-generation-engine", lambda b: stage0(b)["args"].update(generation_engine="sglang"),
     "variants.gold.stages.0.args.generation_engine", "sglang"),
    ("negative-eval-checkpoints", lambda b: b["scales"]["toy"].update(eval_checkpoints=-1),
     "scales.toy.eval_checkpoints", "at least 0"),
    ("multiturn-without-environment", lambda b: stage0(b).update(kind="multiturn_grpo"),
     "variants.gold.stages.0.environment", "needs an environment (known: calculator, interpreter, retrieval)"),
    ("environment-on-grpo", lambda b: stage0(b).update(environment={"name": "calculator"}),
     "variants.gold.stages.0.environment", "only multiturn_grpo stages take an environment"),
    ("unknown-environment", lambda b: stage0(b).update(kind="multiturn_grpo", environment={"name": "calculater"}),
     "variants.gold.stages.0.environment.name", "did you mean 'calculator'?"),
    ("bad-environment-arg", lambda b: stage0(b).update(kind="multiturn_grpo",
                                                        environment={"name": "calculator", "args": {"pen": 1}}),
     "variants.gold.stages.0.environment.args.pen", "unknown argument"),
    ("labeled-environment-on-pool", lambda b: stage0(b, "vote").update(kind="multiturn_grpo", rewards=[
        {"name": "episode_reward"}], environment={"name": "calculator"}),
     "variants.vote.stages.0.environment.name", "scores with gold labels; split 'pool' has none"),
    ("turn-longer-than-episode", lambda b: stage0(b).update(kind="multiturn_grpo", environment={"name": "calculator"},
                                                            args={"max_turn_tokens": 99, "max_completion_length": 50}),
     "variants.gold.stages.0.args.max_turn_tokens", "exceeds the episode's max_completion_length 50"),
]  # fmt: skip


@pytest.mark.parametrize(("mutate", "key", "fragment"), [c[1:] for c in REFUSALS], ids=[c[0] for c in REFUSALS])
def test_refusal_names_file_and_key(tmp_path, mutate, key, fragment):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, mutate)
    msg = str(info.value)
    assert msg.startswith(f"{tmp_path / 'papers' / 'p' / 'paper.yaml'}: {key}: "), msg
    assert info.value.key == key
    assert fragment in msg


def test_unknown_reward_suggests_the_near_miss(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, lambda b: stage0(b, "vote")["rewards"][0].update(name="majority_vot"))
    msg = str(info.value)
    assert info.value.key == "variants.vote.stages.0.rewards.0.name"
    assert str(tmp_path / "papers" / "p" / "paper.yaml") in msg
    assert "did you mean 'majority_vote'?" in msg


def test_command_line_override_with_unknown_key_is_refused(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, overrides=["gpus=8"])
    assert info.value.key == "gpus" and str(info.value).startswith("<command-line overrides>: gpus: unknown key")


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda b: stage0(b).update(foo=1), "variants.gold.stages.0.foo"),
        (lambda b: stage0(b)["rewards"][0].update(weight="heavy"), "variants.gold.stages.0.rewards.0.weight"),
        (lambda b: b["reported"][0].update(value="high"), "reported.0.value"),
    ],
    ids=["unknown-stage-key", "reward-weight-wrong-type", "reported-value-wrong-type"],
)
def test_refusal_inside_list_items_names_the_full_key(tmp_path, mutate, key):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, mutate)
    assert info.value.key == key


def test_missing_paper_file(tmp_path):
    (tmp_path / "papers").mkdir()
    with pytest.raises(ConfigError) as info:
        load_paper("absent", "toy", papers_dir=tmp_path / "papers")
    assert str(tmp_path / "papers" / "absent" / "paper.yaml") in str(info.value)
    assert "file not found" in str(info.value)


@pytest.mark.parametrize(
    ("text", "fragment"), [("paper: {title: [\n", "not valid YAML"), ("- a\n- b\n", "expected a mapping")]
)
def test_unreadable_paper_file(tmp_path, text, fragment):
    file = tmp_path / "papers" / "p" / "paper.yaml"
    file.parent.mkdir(parents=True)
    file.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_paper("p", "toy", papers_dir=tmp_path / "papers")
    assert str(info.value).startswith(f"{file}: ")
    assert fragment in str(info.value)
