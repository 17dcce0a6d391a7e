"""Resolving a bundle's layers: a scale's config, and each variant's stages with what the scale changes in them.

A stage's args are its kind's defaults <- the scale's trainers.<kind> <- the stage's own args; its resources are
the scale's resources.train <- the stage's. Every refusal names the file and key the value is written at (a
field a scale changes is named by the scale's key). harness.config.load puts the resolved parts together.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any

from harness.config import typed
from harness.config.checks import check_stage, check_stage_args, check_stage_order
from harness.config.errors import ConfigError, Invalid
from harness.config.parallel import ParallelConfig
from harness.config.parallel import check as check_parallel
from harness.config.plain import to_plain
from harness.config.read import load_component, read_config
from harness.config.schema import PaperConfig, Resources, ScaleConfig, Stage, Variant
from harness.config.stage import RewardSpec, StageConfig
from harness.config.stage_changes import scale_stage, stage_change
from harness.rewards import REWARDS
from harness.stages import STAGES
from harness.stages.kind import SPLIT, StageKind
from harness.stages.trl_fields import check_extra


def resolve_scale(
    paper: PaperConfig, scale: str, scale_file: Path, file: Path, overrides: list[str] | None
) -> ScaleConfig:
    """configs/scales/<scale>.yaml <- the paper's scales.<scale> <- overrides, each layer checked in its own file."""
    layers = [(scale_file, "", read_config(scale_file)), (file, f"scales.{scale}", paper.scales[scale] or {})]
    if overrides:
        layers.append(("<command-line overrides>", "", _dotlist(overrides)))
    checked = []
    for where, prefix, data in layers:
        try:
            layer = typed.check(ScaleConfig, data)
            for kind, args in (layer.get("trainers") or {}).items():
                if kind not in STAGES:
                    raise Invalid(f"trainers.{kind}", STAGES.unknown_message(kind))
                layer["trainers"][kind] = kind_args(STAGES.get(kind), args, f"trainers.{kind}")
            if layer.get("parallel"):
                layer["parallel"] = typed.check(ParallelConfig, layer["parallel"], "parallel")
            for name, change in (layer.get("stages") or {}).items():
                layer["stages"][name] = stage_change(change, f"stages.{name}")
        except Invalid as e:
            raise e.at(where, prefix) from None
        checked.append(layer)
    try:
        return typed.build(ScaleConfig, typed.merge(*checked))
    except Invalid as e:
        raise e.at(file, f"scales.{scale}") from None


def _resolved_where_written(st: StageConfig, sc: ScaleConfig, file: Path, key: str, changed: str,
                            given: list[str]) -> Stage:  # fmt: skip
    """`_resolve_stage`; a refusal of a field the scale changed is named by the scale's key (`changed.<name>`, where
    the value is written), not the stage's."""
    try:
        return _resolve_stage(st, sc, file, key)
    except ConfigError as e:
        rest = e.key[len(key) + 1 :] if e.key.startswith(key + ".") else ""
        owner = next((n for n in reversed(given) if rest.split(".")[0] in sc.stages[n]), None)
        if owner is None:
            raise
        raise ConfigError(e.file, f"{changed}.{owner}.{rest}", e.message) from None


def _dotlist(overrides: list[str]) -> dict:
    """`a.b=value` overrides as a mapping, values parsed as YAML (OmegaConf's dotlist)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.from_dotlist(list(overrides)))


def _has_stages(paper: PaperConfig, name: str) -> bool:
    """Whether a variant trains: stages of its own or from the variants it extends."""
    while name is not None:
        if paper.variants[name].stages:
            return True
        name = paper.variants[name].extends
    return False


def resolve_variant(paper: PaperConfig, name: str, sc: ScaleConfig, file: Path,
                     scale: str = "") -> tuple[Variant, list[str]]:  # fmt: skip
    """The variant with its stages resolved (with the scale's changes to them), and the key of each stage in the
    bundle."""
    chain, cur = [], name
    while cur is not None:
        if cur in chain:
            raise ConfigError(file, f"variants.{name}.extends", f"cycle through {cur!r}")
        if cur not in paper.variants:
            raise ConfigError(file, f"variants.{chain[-1]}.extends", f"no variant {cur!r}")
        chain.append(cur)
        cur = paper.variants[cur].extends
    for child, parent in itertools.pairwise(chain):
        if paper.variants[child].stages and _has_stages(paper, parent):
            raise ConfigError(file, f"variants.{child}.stages",
                              f"{child} extends {parent} and lists stages of its own, which replace {parent}'s: they "
                              f"are not run after them. Write every stage in {child} (YAML anchors can repeat "
                              f"{parent}'s), or drop `extends`")  # fmt: skip
    model, stages_cfg, rounds, description = sc.model, [], None, ""
    stages_of, rounds_of = name, name  # the variants whose `stages` / `rounds` these are (written there)
    for link in reversed(chain):  # the base of the chain first
        vc = paper.variants[link]
        model = vc.model or model
        if vc.stages is not None:
            stages_cfg, stages_of = vc.stages, link
        if vc.rounds is not None:
            rounds, rounds_of = vc.rounds, link
        description = vc.description or description
    changed = f"scales.{scale}.stages"
    keyed = [(f"variants.{name}.stages.{i}",
              *scale_stage(st, sc.stages, [f"{stages_of}.stages.{i}", f"{name}.stages.{i}"], file, changed))
             for i, st in enumerate(stages_cfg)]  # fmt: skip
    if rounds is not None:
        if rounds.count < 1 or not rounds.stages:
            raise ConfigError(file, f"variants.{name}.rounds", "needs count >= 1 and at least one stage")
        in_round = [scale_stage(st, sc.stages, [f"{rounds_of}.rounds.stages.{j}", f"{name}.rounds.stages.{j}"],
                                 file, changed) for j, st in enumerate(rounds.stages)]  # fmt: skip
        keyed += [(f"variants.{name}.rounds.stages.{j}", *pair) for _ in range(rounds.count)
                  for j, pair in enumerate(in_round)]  # fmt: skip
    stages = [_resolved_where_written(st, sc, file, key, changed, given) for key, st, given in keyed]
    check_stage_order(stages, file, [key for key, _, _ in keyed])
    return Variant(name=name, description=description, model=model, stages=stages), [key for key, _, _ in keyed]


def _resolve_stage(st, sc: ScaleConfig, file: Path, key: str) -> Stage:
    """A stage with its kind's args (the kind's defaults <- the scale's trainers.<kind> <- the stage's args)
    and its resources (the scale's resources.train <- the stage's)."""
    check_stage(st, file, key)
    ds = load_component("datasets", st.dataset or sc.dataset, file, f"{key}.dataset" if st.dataset else "")
    if st.data_args.paraphrase and ds.source != "toy-arithmetic" and not ds.paraphrase_field:
        raise ConfigError(file, f"{key}.data_args.paraphrase", f"dataset {st.dataset or sc.dataset!r} ships no "
                          "rewordings (no paraphrase_field in its config): rows are reworded here in the toy arithmetic "
                          "world only")  # fmt: skip
    kind = STAGES.get(st.kind)
    try:
        merged = typed.merge(sc.trainers.get(st.kind, {}), kind_args(kind, st.args))
        typed_names = {f.name for f in dataclasses.fields(kind.args)}
        args = to_plain(typed.build(kind.args, {k: v for k, v in merged.items() if k in typed_names}))
        args |= {k: v for k, v in merged.items() if k not in typed_names}  # TRL's own fields, checked already
    except Invalid as e:
        raise e.at(file, f"{key}.args") from None
    if sc.instruction is not None and kind.reads == SPLIT and args.get("instruction") is None:
        args["instruction"] = sc.instruction  # the scale's, as the evaluation asks (check_prompt_formats)
    check_stage_args(st.kind, args, file, f"{key}.args")
    try:
        resources = typed.build(
            Resources, typed.merge(to_plain(sc.resources.train), typed.check(Resources, st.resources))
        )
    except Invalid as e:
        raise e.at(file, f"{key}.resources") from None
    parallel = None
    if sc.parallel or st.parallel:
        try:
            parallel = typed.build(ParallelConfig, typed.merge(typed.check(ParallelConfig, sc.parallel),
                                                               typed.check(ParallelConfig, st.parallel)))  # fmt: skip
            check_parallel(parallel)
        except Invalid as e:
            raise e.at(file, f"{key}.parallel") from None
    rewards = [_regraded(r, sc, file, f"{key}.rewards.{i}") for i, r in enumerate(st.rewards)]
    return Stage(kind=st.kind, data=st.data, rewards=rewards, args=args, resources=resources,
                 data_args=st.data_args, objective=st.objective, dataset=st.dataset,
                 preference_loss=st.preference_loss, parallel=parallel, environment=st.environment)  # fmt: skip


def _regraded(spec: RewardSpec, sc: ScaleConfig, file: Path, key: str) -> RewardSpec:
    """`spec` with the reward the scale grades it by instead (`ScaleConfig.rewards`), checked to take its place."""
    new = sc.rewards.get(spec.name)
    if new is None:
        return spec
    if new not in REWARDS:
        raise ConfigError(file, f"scales.rewards.{spec.name}", REWARDS.unknown_message(new))
    old_f, new_f = REWARDS.get(spec.name), REWARDS.get(new)
    if (old_f.needs_labels, old_f.per_sample) != (new_f.needs_labels, new_f.per_sample):
        raise ConfigError(file, f"scales.rewards.{spec.name}", f"{new!r} cannot stand in for {spec.name!r}: "
                          "one reads labels or groups the other does not")  # fmt: skip
    if found := new_f.args_problem(spec.args):
        raise ConfigError(file, f"{key}.args", f"as {new!r} (the scale's grader for {spec.name!r}): {found[1]}")
    return dataclasses.replace(spec, name=new)


def kind_args(kind: StageKind, data: Any, key: str = "") -> dict:
    """One layer of a stage kind's args, checked: its typed fields converted, any other key checked against
    the TRL config class the kind passes its args to (harness/stages/trl_fields.py)."""
    if not isinstance(data, dict):
        return typed.check(kind.args, data, key)
    typed_names = [f.name for f in dataclasses.fields(kind.args)]
    out = typed.check(kind.args, {k: v for k, v in data.items() if k in typed_names}, key)
    extra = {k: v for k, v in data.items() if k not in typed_names}
    try:
        return out | check_extra(kind.name, kind.trl_config, typed_names, extra)
    except Invalid as e:
        raise Invalid(".".join(p for p in (key, e.key) if p), e.message) from None
