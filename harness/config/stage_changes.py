"""A scale's changes to single stages (`ScaleConfig.stages`): checked as partial stages, applied to the stage they
name (keyed by the stage's key in the bundle without `variants.`), and the names a bundle's stages answer to.
harness/config/resolve.py applies them while it resolves each variant."""

from __future__ import annotations

from pathlib import Path

from harness.config import typed
from harness.config.errors import ConfigError, Invalid
from harness.config.plain import to_plain
from harness.config.schema import PaperConfig
from harness.config.stage import StageConfig


def stage_change(change: dict, key: str) -> dict:
    """One entry of a scale's `stages:`, checked as a partial stage: any field but its kind."""
    if isinstance(change, dict) and "kind" in change:
        raise Invalid(f"{key}.kind", "a scale changes a stage's settings, not its kind (write another variant)")
    return typed.check(StageConfig, change, key)


def scale_stage(st: StageConfig, changes: dict[str, dict], names: list[str], file: Path,
                 key: str) -> tuple[StageConfig, list[str]]:  # fmt: skip
    """`st` with a scale's changes for it (`ScaleConfig.stages`, at `key`): those under each of `names` in turn
    (the stage's key where it is written, then the variant's own when it inherits the stage); and the names applied."""
    given = [n for n in dict.fromkeys(names) if n in changes]
    if not given:
        return st, []
    try:
        return typed.build(StageConfig, typed.merge(to_plain(st), *(changes[n] for n in given))), given
    except Invalid as e:
        raise e.at(file, f"{key}.{given[-1]}") from None


def stage_names(paper: PaperConfig) -> set[str]:
    """Every stage's key in the bundle without `variants.`, also as inherited by a variant that extends another."""
    names = set()
    for name in paper.variants:
        cur, seen, stages, rounds = name, set(), None, None
        while cur in paper.variants and cur not in seen:  # the nearest link that writes them
            seen.add(cur)
            stages = paper.variants[cur].stages if stages is None else stages
            rounds = paper.variants[cur].rounds if rounds is None else rounds
            cur = paper.variants[cur].extends
        names |= {f"{name}.stages.{i}" for i in range(len(stages or []))}
        names |= {f"{name}.rounds.stages.{j}" for j in range(len(rounds.stages or []))} if rounds else set()
    return names


def check_stage_changes(changes: dict[str, dict], keys: set[str], file: Path, key: str) -> None:
    """Each of a scale's stage changes names a stage of the bundle (`keys`: `<variant>.stages.<i>` ...)."""
    for name in changes:
        if name not in keys:
            shown = ", ".join(sorted(keys)) or "none: no variant has stages"
            raise ConfigError(file, f"{key}.{name}", f"names no stage of this bundle (stages: {shown})")
