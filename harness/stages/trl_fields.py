"""Open trainer arguments: a stage's `args` may set any field of the installed TRL (or transformers) config class
its kind passes them to, beside the kind's own typed fields.

The field names and simple types are read from the installed class itself (no hand-kept list), once per
installed version, and kept in .cache/harness/ so that validating a bundle does not import TRL every time.
Fields the harness sets from elsewhere in the bundle (the seed, the output folder, the parallelism, the rewards'
weights...) are refused with the key that sets them instead.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import importlib
import json
import math
import typing
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.config.errors import Invalid
from harness.layout import write_atomic

CACHE = Path(__file__).resolve().parents[2] / ".cache" / "harness" / "trl-fields"

OWNED = {
    "output_dir": "the harness writes checkpoints under the run's stage folder",
    "overwrite_output_dir": "the harness writes checkpoints under the run's stage folder",
    "logging_dir": "the harness writes checkpoints under the run's stage folder",
    "seed": "the run's seed (`seeds:` of the scale)",
    "data_seed": "the run's seed (`seeds:` of the scale)",
    "report_to": "the harness logs to MLflow itself (`harness track`)",
    "run_name": "the harness names its runs",
    "resume_from_checkpoint": "the harness resumes from the stage's last checkpoint by itself",
    "use_cpu": "set from the machine the job runs on",
    "bf16": "set by `parallel.dtype` (harness/config/parallel.py)",
    "fp16": "set by `parallel.dtype` (harness/config/parallel.py)",
    "fsdp": "set by `parallel.strategy` (harness/config/parallel.py)",
    "fsdp_config": "set by `parallel.strategy` (harness/config/parallel.py)",
    "deepspeed": "set by `parallel.strategy` (harness/config/parallel.py)",
    "gradient_checkpointing": "set by `parallel.gradient_checkpointing` (harness/config/parallel.py)",
    "model_init_kwargs": "set by `parallel.dtype` and `parallel.attn_implementation` (harness/config/parallel.py)",
    "push_to_hub": "results stay under results/",
    "hub_model_id": "results stay under results/",
    "hub_token": "results stay under results/",
    "reward_weights": "set from the stage's `rewards:` weights",
    "use_vllm": "set by `generation_engine` (hf, vllm, auto)",
}
"""TRL fields the harness sets itself, and where a bundle sets them instead."""
OWNED_BY_CONFIG = {
    "trl:GRPOConfig": {"beta": "set by the objective's `aux: [{name: kl_to_reference, args: {coef: ...}}]`"},
}
"""Fields set by every kind built on one TRL config class (grpo and multiturn_grpo both pass GRPOConfig's `beta` from
the objective: a bundle's own value would reach it twice)."""


def fields_of(spec: str) -> dict[str, dict]:
    """`spec` ("module:Class", a dataclass) -> {field: {"type": bool|int|float|str|any, "optional": ..., "choices": ...}}.

    >>> f = fields_of("trl:GRPOConfig")
    >>> f["beta"]["type"], f["lr_scheduler_type"]["type"], "num_generations" in f
    ('float', 'any', True)
    """
    module, name = spec.split(":")
    dist = module.split(".")[0]
    try:
        version = metadata.version(dist)
    except metadata.PackageNotFoundError:
        version = "unknown"
    cached = CACHE / f"{dist}-{version}" / f"{name}.json"
    if cached.is_file():
        try:
            return json.loads(cached.read_text())
        except ValueError:
            pass  # a torn write: read the class again
    out = _read_in_a_subprocess(spec)
    cached.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(cached, json.dumps(out, sort_keys=True))
    return out


def _read_in_a_subprocess(spec: str) -> dict[str, dict]:
    """The class's fields, read by another Python process: importing TRL pulls in torch, which validating and
    planning never load (tests/test_architecture.py), so only that process does, once per installed version."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "harness.stages.trl_fields", spec], capture_output=True, text=True,
                          timeout=600, cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"could not read the fields of {spec}:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)


def _describe(cls: type) -> dict[str, dict]:
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        if not f.init or f.name.startswith("_"):
            continue
        tp, optional = hints.get(f.name, Any), False
        if typing.get_origin(tp) in (typing.Union, __import__("types").UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            optional = len(args) < len(typing.get_args(tp))
            tp = args[0] if len(args) == 1 else Any
        kind = {bool: "bool", int: "int", float: "float", str: "str"}.get(tp, "any")
        entry: dict[str, Any] = {"type": kind, "optional": optional}
        choices = f.metadata.get("choices") if f.metadata else None
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            choices = [e.value for e in tp]
        if choices:
            entry["choices"] = [c.value if isinstance(c, enum.Enum) else c for c in choices]
        out[f.name] = entry
    return out


def check_extra(kind: str, spec: str | None, typed_fields: list[str], extra: dict) -> dict:
    """Arguments of a stage of `kind` that are not its typed fields, checked against TRL's `spec` class:
    known names (with a "did you mean"), not set by the harness, simple types converted. Returns them converted."""
    if not extra:
        return {}
    if spec is None:
        name = next(iter(extra))
        hint = _close(name, typed_fields)
        raise Invalid(name, f"unknown key {name!r}{hint} (known: {', '.join(typed_fields)})")
    known = fields_of(spec)
    owned = OWNED | OWNED_BY_CONFIG.get(spec, {})
    out = {}
    for name, value in extra.items():
        if name in owned:
            raise Invalid(name, f"not settable in a bundle: {owned[name]}")
        if name not in known:
            hint = _close(name, [*typed_fields, *known])
            raise Invalid(name, f"unknown key {name!r}{hint}: neither an argument of {kind} stages nor a field of "
                                f"{spec.replace(':', '.')} (installed)")  # fmt: skip
        out[name] = _convert(known[name], value, name)
    return out


def _close(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(str(name), names, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _convert(field: dict, value: Any, key: str) -> Any:
    kind = field["type"]
    if value is None:
        if field["optional"] or kind == "any":
            return None
        raise Invalid(key, "must not be null")
    if kind == "any":
        out = _finite(value, key)
    elif isinstance(value, (dict, list)):
        raise Invalid(key, f"expected {kind}, got a {'mapping' if isinstance(value, dict) else 'list'}")
    elif kind == "bool":
        if not isinstance(value, bool):
            raise Invalid(key, f"expected true or false, got {value!r}")
        out = value
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(key, f"expected an integer, got {value!r}")
        out = value
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Invalid(key, f"expected a number, got {value!r}")
        if not math.isfinite(value):
            raise Invalid(key, f"expected a finite number, got {value!r}")
        out = float(value)
    else:
        out = str(value)
    choices = field.get("choices")
    if choices and out not in choices:
        raise Invalid(key, f"{out!r} is not one of {', '.join(map(str, choices))}")
    return out


def _finite(value: Any, key: str) -> Any:
    """`value` (of a field of any type), every number in it finite.

    >>> _finite({"a": [1.0, 2]}, "k")
    {'a': [1.0, 2]}
    """
    if isinstance(value, float) and not math.isfinite(value):
        raise Invalid(key, f"expected a finite number, got {value!r}")
    for k, v in value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ():
        _finite(v, f"{key}.{k}")
    return value


if __name__ == "__main__":  # the subprocess of _read_in_a_subprocess: one class's fields as JSON on stdout
    import sys

    _module, _name = sys.argv[1].split(":")
    print(json.dumps(_describe(getattr(importlib.import_module(_module), _name)), sort_keys=True))
