"""harness/config/typed.py: plain YAML onto dataclass schemas with OmegaConf's rules, checked against OmegaConf
itself (its structured merge is the oracle: same values where it accepts, a refusal where it refuses)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from harness.config import typed
from harness.config.errors import ConfigError, Invalid
from harness.config.plain import to_plain
from harness.config.stage import ObjectiveConfig, StageConfig


@dataclass
class Inner:
    name: str = MISSING
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class Schema:
    i: int = 1
    f: float = 1.0
    b: bool = False
    s: str = "x"
    oi: int | None = None
    li: list[int] = field(default_factory=list)
    ls: list[str] = field(default_factory=list)
    ds: dict[str, float] = field(default_factory=dict)
    any: Any = None
    inner: Inner = field(default_factory=lambda: Inner(name="default"))
    items: list[Inner] = field(default_factory=list)


CASES = [
    {"i": 3}, {"i": "3"}, {"i": 3.0}, {"i": 3.5}, {"i": True}, {"i": "three"}, {"i": None},
    {"f": 2}, {"f": "2.5"}, {"f": 1e-5}, {"f": True}, {"f": "fast"},
    {"b": True}, {"b": 0}, {"b": 2}, {"b": "yes"}, {"b": "Off"}, {"b": "1"}, {"b": "maybe"}, {"b": 1.0},
    {"s": 7}, {"s": 0.5}, {"s": True}, {"s": [1]}, {"s": {"a": 1}}, {"s": None},
    {"oi": None}, {"oi": 4},
    {"li": [1, "2"]}, {"li": "abc"}, {"li": [1.5]}, {"ls": [1, 2.5, True]},
    {"ds": {"a": 1, "b": "2"}}, {"ds": [1]},
    {"any": {"x": [1, {"y": None}]}}, {"any": 3},
    {"inner": {"args": {"k": 1}}}, {"inner": {"name": "n"}}, {"inner": None}, {"inner": 3},
    {"items": [{"name": "a"}, {"name": "b", "args": {"z": 2}}]}, {"items": [{"args": {}}]},
    {"unknown": 1}, {"inner": {"nmae": "x"}},
]  # fmt: skip


def _omegaconf(data: dict):
    try:
        return "ok", OmegaConf.to_container(OmegaConf.merge(OmegaConf.structured(Schema), data), throw_on_missing=True)
    except (OmegaConfBaseException, TypeError):  # TypeError: "Cannot merge incompatible container types"
        return "refused", None


def _ours(data: dict):
    try:
        return "ok", to_plain(typed.build(Schema, data))
    except Invalid:
        return "refused", None


@pytest.mark.parametrize("data", CASES, ids=[repr(c) for c in CASES])
def test_values_and_refusals_match_omegaconf(data):
    theirs, ours = _omegaconf(data), _ours(data)
    assert ours[0] == theirs[0]
    if theirs[0] == "ok":
        assert ours[1] == theirs[1]
        assert [type(v) for v in ours[1].values()] == [type(v) for v in theirs[1].values()]  # 2 -> 2.0 for a float


def test_layers_merge_key_by_key_and_a_mapping_merges_onto_the_fields_default():
    a = typed.check(StageConfig, {"kind": "grpo", "objective": {"loss": {"args": {"epsilon_high": 0.28}}}})
    b = typed.check(StageConfig, {"objective": {"aux": [{"name": "entropy_bonus", "args": {"coef": 1}}]}})
    stage = typed.build(StageConfig, typed.merge(a, b))
    assert stage.objective.loss.name == "clipped_surrogate" and stage.objective.loss.args == {"epsilon_high": 0.28}
    assert stage.objective.advantage.name == ObjectiveConfig().advantage.name
    assert [x.name for x in stage.objective.aux] == ["entropy_bonus"]


def test_refusals_name_the_key_inside_the_data():
    with pytest.raises(Invalid) as err:
        typed.build(Schema, {"items": [{"name": "a"}, {"name": "b", "argz": {}}]})
    assert err.value.key == "items.1.argz" and "did you mean 'args'" in str(err.value)
    with pytest.raises(Invalid) as err:
        typed.build(Schema, {"items": [{"args": {}}]})
    assert err.value.key == "items.0.name" and "required" in str(err.value)
    with pytest.raises(Invalid) as err:
        typed.check(Schema, {"li": [1, "two"]})
    assert err.value.key == "li.1" and "'two'" in str(err.value)


def test_a_layer_may_leave_out_required_values_the_build_may_not():
    assert typed.check(Inner, {"args": {"a": 1}}) == {"args": {"a": 1}}
    with pytest.raises(Invalid, match="required"):
        typed.build(Inner, {"args": {"a": 1}})


def test_built_objects_do_not_share_containers_with_the_data():
    data = {"any": {"x": [1]}, "inner": {"name": "n", "args": {"deep": {"y": 1}}}}
    built = typed.build(Schema, data)
    built.any["x"].append(2)
    built.inner.args["deep"]["y"] = 5
    assert data == {"any": {"x": [1]}, "inner": {"name": "n", "args": {"deep": {"y": 1}}}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("a: 1e-5\nb: 1.0e-5\nc: 5\nd: yes\ne: '1e-5'\n", {"a": 1e-5, "b": 1e-5, "c": 5, "d": True, "e": "1e-5"}),
     ("", {}), ("# only a comment\n", {})],
)  # fmt: skip
def test_yaml_is_read_as_omegaconf_reads_it(tmp_path, text, expected):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    assert typed.read_yaml(f) == expected == (OmegaConf.to_container(OmegaConf.load(f)) if text.strip() else {})


@pytest.mark.parametrize(("text", "says"), [("a: 1\na: 2\n", "duplicate key a"), ("a: [1\n", "not valid YAML"),
                                            ("- 1\n- 2\n", "a mapping at the top level")])  # fmt: skip
def test_bad_yaml_is_refused_naming_the_file(tmp_path, text, says):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=says) as err:
        typed.read_yaml(f)
    assert err.value.file == str(f)
