"""Checks of what a bundle says about its paper, beyond its runs: claims, reported numbers, the sources of its
settings and its deviations (the runs themselves: harness/config/checks.py)."""

from __future__ import annotations

import math
import re
from pathlib import Path

from harness.config.errors import ConfigError
from harness.config.schema import CHECKPOINT_RULES, PaperConfig

CLAIM_METRICS = re.compile(
    r"(pass|maj)@[1-9][0-9]*|avg@n|distinct_(answers|correct|[1-9])|judge/[A-Za-z0-9_.-]+|length/(all|correct|wrong)"
    r"|episodes/(success|turns|tool_calls|invalid_calls|tool_use|hit)"
)
"""The metrics an evaluation writes (harness/evaluation/metrics.py, judges in evaluate.py, episodes in episodes.py):
what a claim can test (tests/test_mutations.py checks every metric the evaluation writes matches)."""
RATES = re.compile(r"(pass|maj|avg)@\w+|accuracy|win_rate|episodes/(success|tool_use|hit)")
"""Reported metrics that are fractions in [0, 1]."""


def check_claims(paper: PaperConfig, file: Path, variants: set[str]) -> None:
    if not paper.variants:
        raise ConfigError(file, "variants", "a bundle needs at least one variant (a base with no stages counts)")
    for i, c in enumerate(paper.claims):
        if c.op not in (">", ">=", "<", "<="):
            raise ConfigError(file, f"claims.{i}.op", f"unknown operator {c.op!r} (known: > >= < <=)")
        if not CLAIM_METRICS.fullmatch(c.metric):
            raise ConfigError(file, f"claims.{i}.metric", f"unknown metric {c.metric!r} (known: pass@k and maj@k "
                              "for k >= 1, avg@n, distinct_answers, distinct_correct, distinct_<n>, judge/<name>, "
                              "length/all, length/correct, length/wrong, episodes/<success|turns|tool_calls|"
                              "invalid_calls|tool_use|hit>)")  # fmt: skip
        if c.scale not in paper.scales:
            raise ConfigError(file, f"claims.{i}.scale", f"no scale {c.scale!r} in this bundle "
                              f"(has: {', '.join(paper.scales)})")  # fmt: skip
        numeric = [side for side in ("lhs", "rhs") if getattr(c, side) not in variants and _is_number(getattr(c, side))]
        trained = [side for side in ("lhs", "rhs") if getattr(c, side) in variants and _trains(paper, getattr(c, side))]
        if numeric and trained:
            raise ConfigError(file, f"claims.{i}.{numeric[0]}", f"a claim about trained variant "
                              f"{getattr(c, trained[0])!r} compares it with a variant evaluated under the same "
                              "protocol (the base: a variant with no stages), not with a number")  # fmt: skip
        for side in ("lhs", "rhs"):
            ref = getattr(c, side)
            if ref in variants:
                continue
            if not _is_number(ref) or not math.isfinite(float(ref)):
                raise ConfigError(file, f"claims.{i}.{side}", f"no variant {ref!r} (nor a finite number)")
            if RATES.fullmatch(c.metric) and not 0.0 <= float(ref) <= 1.0:
                raise ConfigError(file, f"claims.{i}.{side}", f"{c.metric} is a fraction in [0, 1], got {ref}")
    for name, v in paper.variants.items():
        for j, scale in enumerate(v.scales or []):
            if scale not in paper.scales:
                raise ConfigError(file, f"variants.{name}.scales.{j}", f"no scale {scale!r} in this bundle "
                                  f"(has: {', '.join(paper.scales)})")  # fmt: skip
    for i, r in enumerate(paper.reported):
        if r.variant not in variants:
            raise ConfigError(file, f"reported.{i}.variant", f"no variant {r.variant!r}")
        if not (CLAIM_METRICS.fullmatch(r.metric) or RATES.fullmatch(r.metric)):
            raise ConfigError(file, f"reported.{i}.metric", f"unknown metric {r.metric!r} (known: what an evaluation "
                              "writes, as for claims, and accuracy, win_rate)")  # fmt: skip
        if r.checkpoint not in CHECKPOINT_RULES:
            raise ConfigError(file, f"reported.{i}.checkpoint", f"unknown rule {r.checkpoint!r} "
                              f"(known: {', '.join(CHECKPOINT_RULES)})")  # fmt: skip
        if r.over is not None and r.over not in variants | {r.variant}:
            raise ConfigError(file, f"reported.{i}.over", f"no variant {r.over!r}")
        if r.over == r.variant:
            raise ConfigError(file, f"reported.{i}.over", f"a gain of {r.variant!r} over itself")
        low = -1.0 if r.over is not None else 0.0  # a gain in a rate lies in [-1, 1]
        if RATES.fullmatch(r.metric) and not low <= r.value <= 1.0:
            what = (
                "a gain in a fraction, in [-1, 1] (+24 points is 0.24)"
                if r.over
                else "a fraction in [0, 1] (16.4% is 0.164)"
            )
            raise ConfigError(file, f"reported.{i}.value", f"{r.metric} is {what}, got {r.value:g}")


def check_sources(paper: PaperConfig, file: Path) -> None:
    """Each source names a setting the bundle has; each deviation a scale it defines."""
    for key in paper.sources:
        if not _has_key(paper, str(key).split(".")):
            raise ConfigError(file, f"sources.{key}", "names no setting of this bundle (a source is keyed by the "
                              "setting's full key, e.g. scales.paper.trainers.grpo.learning_rate)")  # fmt: skip
    for i, d in enumerate(paper.deviations):
        if d.scale not in paper.scales:
            raise ConfigError(file, f"deviations.{i}.scale", f"no scale {d.scale!r} in this bundle "
                              f"(has: {', '.join(paper.scales)})")  # fmt: skip


def _has_key(node, parts: list[str]) -> bool:
    """`parts` (a key split at its dots) name a setting under `node`; a mapping's own keys may hold dots
    (a scale's `stages:` are keyed `one_shot.stages.0`).

    >>> _has_key({"stages": {"a.stages.0": {"args": {"lr": 1}}}}, "stages.a.stages.0.args.lr".split("."))
    True
    """
    if not parts:
        return True
    if isinstance(node, dict):
        return any(
            ".".join(parts[:n]) in node and _has_key(node[".".join(parts[:n])], parts[n:])
            for n in range(len(parts), 0, -1)
        )
    if isinstance(node, list):
        return parts[0].isdigit() and int(parts[0]) < len(node) and _has_key(node[int(parts[0])], parts[1:])
    if hasattr(node, "__dataclass_fields__") and parts[0] in node.__dataclass_fields__:
        return _has_key(getattr(node, parts[0]), parts[1:])
    return False


def unsourced(paper: PaperConfig, scale: str = "paper") -> list[str]:
    """The settings under `scales.<scale>` that have neither a source nor a deviation naming them (assumptions).

    >>> from harness.config.schema import Deviation
    >>> p = PaperConfig(scales={"paper": {"trainers": {"grpo": {"lr": 1, "steps": 2, "kl": 0}}}},
    ...                 sources={"scales.paper.trainers.grpo.lr": "Table 4"},
    ...                 deviations=[Deviation("scales.paper.trainers.grpo.kl", "0.001", "0", "shared objective")])
    >>> unsourced(p)
    ['scales.paper.trainers.grpo.steps']
    """
    covered = set(paper.sources) | {d.field for d in paper.deviations}

    def leaves(node, key: str):
        if isinstance(node, dict) and node:
            for k, v in node.items():
                yield from leaves(v, f"{key}.{k}")
        else:
            yield key

    settings = leaves(paper.scales.get(scale) or {}, f"scales.{scale}")
    return [k for k in settings if not any(k == c or k.startswith(c + ".") for c in covered)]


def _trains(paper: PaperConfig, name: str) -> bool:
    """The variant has training stages of its own or from the variants it extends."""
    seen = set()
    while name in paper.variants and name not in seen:
        seen.add(name)
        v = paper.variants[name]
        if v.stages or v.rounds:
            return True
        name = v.extends
    return False


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False
