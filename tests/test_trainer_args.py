"""Open trainer arguments and parallelism settings in a bundle: any field of the installed TRL config class is
accepted, checked against that class (did-you-mean, types, choices), reaches TRL and the fingerprint; fields the
harness sets itself are refused with the key that sets them; `parallel:` merges scale <- stage and is checked."""

from __future__ import annotations

import pytest

from harness.config.errors import ConfigError
from harness.config.parallel import ParallelConfig
from harness.config.plain import fingerprint, plain_stage
from harness.stages.trl_fields import fields_of
from tests.test_config import load, stage0


def test_a_trl_field_is_accepted_and_reaches_the_resolved_args(tmp_path):
    rp = load(tmp_path, lambda b: stage0(b)["args"].update(lr_scheduler_type="cosine", top_p=0.95, max_grad_norm=0.5))
    args = rp.variants["gold"].stages[0].args
    assert (args["lr_scheduler_type"], args["top_p"], args["max_grad_norm"]) == ("cosine", 0.95, 0.5)
    assert args["max_steps"] == 7  # typed fields still merge as before


def test_trl_fields_merge_scale_then_stage(tmp_path):
    def mutate(b):
        b["scales"]["toy"]["trainers"]["grpo"].update(top_p=0.9, max_grad_norm=0.3)
        stage0(b)["args"].update(top_p=0.8)

    args = load(tmp_path, mutate).variants["gold"].stages[0].args
    assert (args["top_p"], args["max_grad_norm"]) == (0.8, 0.3)
    assert "top_p" not in load(tmp_path / "other").variants["gold"].stages[0].args


def test_a_trl_field_changes_the_fingerprint_only_when_set(tmp_path):
    plain = load(tmp_path).variants["gold"].stages[0]
    tuned = load(tmp_path / "b", lambda b: stage0(b)["args"].update(top_p=0.95)).variants["gold"].stages[0]
    assert "top_p" not in plain.args
    assert fingerprint(plain_stage(plain)) != fingerprint(plain_stage(tuned))


REFUSED = [
    ("near-miss", {"lr_sheduler_type": "cosine"}, "lr_sheduler_type", "did you mean 'lr_scheduler_type'?"),
    ("not-a-field", {"frobnicate": 1}, "frobnicate", "neither an argument of grpo stages nor a field of trl.GRPOConfig"),
    ("wrong-type", {"top_p": "high"}, "top_p", "expected a number"),
    ("not-finite", {"max_grad_norm": float("nan")}, "max_grad_norm", "finite"),
    ("bool-for-int", {"eval_steps": True}, "eval_steps", None),
    ("owned-by-objective", {"beta": 0.01}, "beta", "kl_to_reference"),
    ("owned-by-parallel", {"gradient_checkpointing": True}, "gradient_checkpointing", "parallel.gradient_checkpointing"),
    ("owned-seed", {"seed": 3}, "seed", "seeds:"),
]  # fmt: skip


@pytest.mark.parametrize(("given", "key", "fragment"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_a_bad_trl_field_is_refused_with_file_and_key(tmp_path, given, key, fragment):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, lambda b: stage0(b)["args"].update(given))
    assert info.value.key == f"variants.gold.stages.0.args.{key}"
    assert str(info.value).startswith(str(tmp_path / "papers" / "p" / "paper.yaml"))
    if fragment:
        assert fragment in str(info.value)


def test_a_kind_built_on_grpo_refuses_beta_too(tmp_path):
    """multiturn_grpo builds GRPOConfig through grpo's builder, which sets beta from the objective: a bundle's beta
    would reach GRPOConfig twice (a TypeError at paper scale), so it is refused at load with the key to use."""

    def mutate(b):
        stage0(b).update(kind="multiturn_grpo", environment={"name": "calculator"}, args={"beta": 0.001})

    with pytest.raises(ConfigError) as info:
        load(tmp_path, mutate)
    assert info.value.key == "variants.gold.stages.0.args.beta"
    assert "kl_to_reference" in str(info.value)


def test_a_bad_trl_field_in_the_scale_names_the_scale_key(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, lambda b: b["scales"]["toy"]["trainers"]["grpo"].update(top_q=0.9))
    assert info.value.key == "scales.toy.trainers.grpo.top_q"
    assert "did you mean 'top_p'?" in str(info.value)


def test_a_kind_without_a_trl_config_keeps_its_closed_schema(tmp_path):
    def mutate(b):
        b["variants"]["gold"]["stages"] = [
            {"kind": "generate", "rewards": [{"name": "exact_match"}], "args": {"top_p": 0.9}}
        ]

    with pytest.raises(ConfigError) as info:
        load(tmp_path, mutate)
    assert info.value.key == "variants.gold.stages.0.args.top_p"
    assert "unknown key 'top_p'" in str(info.value)


def test_field_lists_come_from_the_installed_classes():
    import dataclasses

    from trl import DPOConfig, GRPOConfig, SFTConfig

    for spec, cls in (("trl:GRPOConfig", GRPOConfig), ("trl:SFTConfig", SFTConfig), ("trl:DPOConfig", DPOConfig)):
        assert set(fields_of(spec)) == {
            f.name for f in dataclasses.fields(cls) if f.init and not f.name.startswith("_")
        }


def test_trl_fields_reach_trls_config(world, tmp_path):
    from harness.config.schema import Stage
    from harness.config.stage import RewardSpec
    from harness.stages.grpo import GRPOArgs
    from harness.stages.plumbing import split_rows
    from tests.conftest import build_trainer, stage_job

    root, dataset = world
    args = {**GRPOArgs().__dict__, "max_steps": 1, "per_device_train_batch_size": 4, "num_generations": 4,
            "max_completion_length": 4, "lr_scheduler_type": "cosine", "top_p": 0.9, "max_grad_norm": 0.25}  # fmt: skip
    stage = Stage(kind="grpo", data="train", rewards=[RewardSpec(name="exact_match")], args=args)
    rows = split_rows(stage_job(stage, str(root / "model"), dataset, root / "data"))
    trainer = build_trainer(stage, str(root / "model"), rows, 0, tmp_path / "ckpt")
    assert (trainer.args.lr_scheduler_type.value, trainer.args.top_p, trainer.args.max_grad_norm) == (
        "cosine",
        0.9,
        0.25,
    )


# --------------------------------------------------------------------------- parallel


def test_parallel_merges_scale_then_stage(tmp_path):
    def mutate(b):
        b["scales"]["toy"]["parallel"] = {"strategy": "fsdp", "dtype": "bfloat16"}
        stage0(b)["parallel"] = {"gradient_checkpointing": True}

    rp = load(tmp_path, mutate)
    assert rp.variants["gold"].stages[0].parallel == ParallelConfig(
        strategy="fsdp", dtype="bfloat16", gradient_checkpointing=True
    )
    assert rp.variants["vote"].stages[0].parallel == ParallelConfig(strategy="fsdp", dtype="bfloat16")


def test_no_parallel_settings_leave_the_stage_as_before(tmp_path):
    stage = load(tmp_path).variants["gold"].stages[0]
    assert stage.parallel is None and "parallel" not in plain_stage(stage)


@pytest.mark.parametrize(
    ("where", "given", "key", "fragment"),
    [
        ("stage", {"strategy": "zero4"}, "variants.gold.stages.0.parallel.strategy", "known: ddp, fsdp, zero2, zero3"),
        ("stage", {"offload_params": True}, "variants.gold.stages.0.parallel.offload_params", "fsdp or zero3"),
        ("scale", {"dtyp": "bfloat16"}, "scales.toy.parallel.dtyp", "did you mean 'dtype'?"),
    ],
)
def test_bad_parallel_settings_are_refused(tmp_path, where, given, key, fragment):
    def mutate(b):
        if where == "stage":
            stage0(b)["parallel"] = given
        else:
            b["scales"]["toy"]["parallel"] = given

    with pytest.raises(ConfigError) as info:
        load(tmp_path, mutate)
    assert info.value.key == key and fragment in str(info.value)
