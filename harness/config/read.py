"""Reading config files: each YAML file parsed once per content, built onto its schema, and checked.

configs/models/, configs/datasets/ and configs/eval/ hold the components a bundle names (`load_component`); a
name is a file inside its folder, never a path. `CONFIGS` here is where every config is read from (a test
points it elsewhere). Like harness.config.load, this imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.config import typed
from harness.config.checks import check_dataset, check_eval, check_model
from harness.config.components import DatasetConfig, EvalConfig, ModelConfig
from harness.config.errors import ConfigError, Invalid
from harness.layout import CONFIGS

COMPONENTS: dict[str, tuple[type, Callable]] = {
    "models": (ModelConfig, check_model),
    "datasets": (DatasetConfig, check_dataset),
    "eval": (EvalConfig, check_eval),
}
"""configs/<kind>/ holds configs of these schemas, each checked by its function once built."""


_PARSED: dict[tuple[str, str], dict] = {}


def read_config(file: Path) -> dict:
    """`file` as plain data, parsed once per content (Snakemake's start reads a scale or a model many times)."""
    if not file.is_file():
        raise ConfigError(file, "", "file not found")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(file, "", f"not UTF-8 text: {e}") from None
    key = (str(file), text)
    if key not in _PARSED:
        _PARSED[key] = typed.read_yaml(file, text)
    return _PARSED[key]


def load_config(schema: type, file: Path, check: Callable | None = None) -> Any:
    """`file` built onto `schema` (a fresh object every time) and checked."""
    try:
        obj = typed.build(schema, read_config(file))
    except Invalid as e:
        raise e.at(file, "") from None
    if check is not None:
        check(obj, file)
    return obj


def load_component(kind: str, name: str, referrer: Path, key: str) -> Any:
    """Load configs/<kind>/<name>.yaml onto its schema (kind: models, datasets, eval), checked."""
    schema, check = COMPONENTS[kind]
    if problem := typed.check_slug(name, kind.rstrip("s") + " config"):
        raise ConfigError(referrer, key, problem)  # a name is a file inside configs/<kind>/, never a path
    file = CONFIGS / kind / f"{name}.yaml"
    if not file.is_file():
        known = sorted(p.stem for p in (CONFIGS / kind).glob("*.yaml"))
        raise ConfigError(referrer, key, f"no {kind} config {name!r} (known: {', '.join(known)})")
    return load_config(schema, file, check)
