"""Plain YAML data onto typed dataclass schemas: one pass per layer, no per-merge copies.

The schemas (harness/config/*.py, the stage kinds' args) are dataclasses in OmegaConf's structured-config
style (`MISSING` marks a required value). Planning resolves every bundle on every Snakemake start, and
OmegaConf's structured merges cost ~15 ms each there (hundreds per run), so values are checked and
merged here on plain data with the same rules:

- int: an int or a string of one (not a bool); float: a float, an int or a numeric string, as float;
  bool: a bool, an int (0 is false), or yes/no/true/false/on/off/y/n; str: any scalar, as its string;
  Any: as given. `X | None` also takes null; other types refuse it.
- list[X]: a list, each item converted; dict[str, X]: a mapping with string keys, each value converted.
- a dataclass: a mapping merged onto the field's default (or the class's defaults); unknown keys refused.
- layers merge key by key where both are mappings (recursively); any other value replaces.

Every refusal is an `Invalid` with the dotted key inside the data (list items by index); the loader adds
the file and the key prefix. `read_yaml` parses as OmegaConf does (`1e-5` is a float; duplicate keys
are refused) and returns plain data.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import math
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from harness.config.errors import ConfigError, Invalid
from harness.registry import shown

MISSING: Any = "???"
"""A required value (OmegaConf's marker): a schema field with this default must be given."""

_BOOL_WORDS = {"yes": True, "y": True, "on": True, "true": True, "no": False, "n": False, "off": False, "false": False}
_NAMES = {int: "an integer", float: "a number", bool: "a boolean", str: "a string"}


# ----------------------------------------------------------------------------- YAML


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """YAML 1.1 as OmegaConf reads it: floats without a dot (`1e-5`) are floats; a key given twice is refused."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:str" and key_node.value in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, f"found duplicate key {key_node.value}",
                    key_node.start_mark,
                )  # fmt: skip
            seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?[0-9]+(?:_[0-9]+)*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?[0-9]+(?:_[0-9]+)*(?:[eE][-+]?[0-9]+)
        |\.[0-9]+(?:_[0-9]+)*(?:[eE][-+][0-9]+)?
        |[-+]?[0-9]+(?:_[0-9]+)*(?::[0-5]?[0-9])+\.[0-9_]*
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def read_yaml(file: Path, text: str | None = None) -> dict:
    """A YAML file (or its `text`) whose top level is a mapping (an empty file is an empty mapping), as plain data."""
    if text is None and not file.is_file():
        raise ConfigError(file, "", "file not found")
    try:
        data = yaml.load(file.read_text(encoding="utf-8") if text is None else text, Loader=_Loader)  # noqa: S506
    except UnicodeDecodeError as e:
        raise ConfigError(file, "", f"not UTF-8 text: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(file, "", f"not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(file, "", "expected a mapping at the top level")
    return data


# ----------------------------------------------------------------------------- constraints

MAX_STEPS = 10_000_000
"""Optimizer steps (and step intervals) a stage may ask for: more is a typo, not a plan."""
MAX_BATCH = 65_536
"""Rows or completions in one batch, per device or in all."""
MAX_TOKENS = 1 << 20
"""Tokens one completion may run to."""
MAX_SAMPLES = 65_536
"""Completions per prompt (a GRPO group, an evaluation's n)."""
MAX_TEMPERATURE = 100.0

SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
"""A name that becomes part of a path: letters, digits, `_`, `.`, `-`, starting with a letter or digit (so never
`.`, `..`, `~user` or empty), no `/`, at most 100 characters."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """What a field's value must satisfy beyond its type (checked by build/check; see `limited`)."""

    gt: float | None = None
    ge: float | None = None
    le: float | None = None
    nonempty: bool = False
    unique: bool = False

    def problem(self, value: Any) -> str | None:
        """Why `value` (a number, or a list of them) breaks these limits; None if it does not."""
        if isinstance(value, list):
            if self.nonempty and not value:
                return "must not be empty"
            if self.unique and len(set(map(str, value))) < len(value):
                return f"must not repeat a value, got {value}"
            return next((p for p in map(self._number, value) if p), None)
        return self._number(value)

    def _number(self, v: Any) -> str | None:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            return None
        for bound, bad, words in ((self.gt, lambda b: v <= b, "greater than"), (self.ge, lambda b: v < b, "at least"),
                                  (self.le, lambda b: v > b, "at most")):  # fmt: skip
            if bound is not None and bad(bound):
                return f"must be {words} {bound:g}, got {v:g}"
        return None


def limited(default: Any = MISSING, *, default_factory: Any = dataclasses.MISSING, metadata: dict | None = None,
            **limits: Any) -> Any:  # fmt: skip
    """A dataclass field with Limits (gt, ge, le for numbers and list items; nonempty, unique for lists).

    >>> @dataclasses.dataclass
    ... class A:
    ...     rate: float = limited(0.1, gt=0)
    >>> build(A, {"rate": 0})
    Traceback (most recent call last):
    harness.config.errors.Invalid: rate: must be greater than 0, got 0
    """
    meta = dict(metadata or {}) | {"limits": Limits(**limits)}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def check_slug(value: str, what: str) -> str | None:
    """Why `value` cannot name a `what` that becomes a path (see SLUG); None if it can."""
    if not isinstance(value, str) or not SLUG.fullmatch(value):
        text = repr(value) if len(str(value)) <= 60 else f"{str(value)[:40]!r}... ({len(str(value))} characters)"
        return (f"{text} cannot name a {what}: use letters, digits, '_', '.' and '-', starting with a letter or "
                "digit, at most 100 characters")  # fmt: skip
    return None


# ----------------------------------------------------------------------------- merging and building


def merge(*layers: Any) -> Any:
    """Later layers win; where both sides are mappings they merge key by key.

    >>> merge({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"d": 4}, "e": [5]})
    {'a': 1, 'b': {'c': 2, 'd': 4}, 'e': [5]}
    """
    out = layers[0]
    for layer in layers[1:]:
        if isinstance(out, dict) and isinstance(layer, dict):
            out = dict(out)
            for k, v in layer.items():
                out[k] = merge(out[k], v) if k in out else v
        else:
            out = layer
    return out


def check(schema: type, data: Any, key: str = "") -> dict:
    """One layer checked against a dataclass schema: known keys, right types, values converted; required
    values may be absent (another layer may give them). Returns the converted mapping."""
    return _convert(schema, data, key, partial=True)


def build(schema: type, data: Any, key: str = "") -> Any:
    """An instance of `schema` from (merged) plain data, the schema's defaults under it; every required
    value must be there."""
    return _convert(schema, data, key, partial=False)


@functools.cache
def _fields(schema: type) -> dict[str, tuple[Any, dataclasses.Field]]:
    hints = typing.get_type_hints(schema)
    return {f.name: (hints[f.name], f) for f in dataclasses.fields(schema) if f.init}


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return MISSING


def _convert(tp: Any, value: Any, key: str, partial: bool) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, key, partial)
    if value is None:
        mapping = origin is dict or dataclasses.is_dataclass(tp)
        raise Invalid(key, "must not be null" + (" (an empty mapping is written {})" if mapping else ""))
    if tp is Any:  # a copy: built objects never share containers with the parsed file (load.py caches it)
        return copy.deepcopy(value) if isinstance(value, (dict, list)) else value
    if dataclasses.is_dataclass(tp):
        return _dataclass(tp, value, key, partial)
    if origin is list:
        if not isinstance(value, list):
            raise Invalid(key, f"expected a list, got {shown(value)}")
        return [_convert(args[0], v, f"{key}.{i}" if key else str(i), partial) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise Invalid(key, f"expected a mapping, got {shown(value)}")
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise Invalid(key, f"keys must be strings, got {k!r}")
            out[k] = _convert(args[1], v, f"{key}.{k}" if key else k, partial)
        return out
    return _scalar(tp, value, key)


def _dataclass(schema: type, value: Any, key: str, partial: bool) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if not isinstance(value, dict):
        raise Invalid(key, f"expected a mapping ({schema.__name__}), got {shown(value)}")
    fields = _fields(schema)
    for name in value:
        if name not in fields:
            close = difflib.get_close_matches(str(name), fields, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise Invalid(_join(key, name), f"unknown key {name!r}{hint} (known: {', '.join(fields)})")
    if partial:
        return {
            name: _field(tp, f, v, _join(key, name), partial) for name, v in value.items() for tp, f in [fields[name]]
        }
    out = {}
    for name, (tp, f) in fields.items():
        given = value.get(name, MISSING)
        if not _missing(given):
            out[name] = _field(tp, f, given, _join(key, name), partial)
            continue
        default = _default(f)
        if _missing(default):
            raise Invalid(_join(key, name), "required value missing")
        out[name] = default
    return schema(**out)


def _missing(value: Any) -> bool:
    """A required value not given (also when a default holding MISSING was merged under it)."""
    return isinstance(value, str) and value == MISSING


def _field(tp: Any, f: dataclasses.Field, value: Any, key: str, partial: bool) -> Any:
    """A field's value; a mapping given for a dataclass field merges onto the field's default; its Limits hold."""
    if isinstance(value, dict) and not partial:
        default = _default(f)
        if dataclasses.is_dataclass(default) and not isinstance(default, type):
            value = merge(dataclasses.asdict(default), value)
    out = _convert(tp, value, key, partial)
    limits = f.metadata.get("limits")
    if limits is not None and not _missing(out) and (problem := limits.problem(out)):
        raise Invalid(key, problem)
    return out


def _scalar(tp: type, value: Any, key: str) -> Any:
    if isinstance(value, (dict, list)):
        raise Invalid(key, f"expected {_NAMES.get(tp, tp.__name__)}, got {shown(value)}")
    if tp is float and type(value) in (int, float, str):
        number = _float(value)
        if number is not None and not math.isfinite(number):
            raise Invalid(key, f"expected a finite number, got {value!r}")
        if number is not None:
            return number
    try:
        if tp is str:
            return str(value)
        if tp is int and type(value) in (int, str):
            return int(value)
        if tp is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, int):
                return value != 0
            if isinstance(value, str):
                return _BOOL_WORDS[value.lower()] if value.lower() in _BOOL_WORDS else int(value) != 0
    except ValueError:
        pass
    raise Invalid(key, f"expected {_NAMES.get(tp, getattr(tp, '__name__', str(tp)))}, got {shown(value)}")


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _join(key: str, name: Any) -> str:
    return f"{key}.{name}" if key else str(name)
