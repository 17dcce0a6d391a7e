"""Resolved configs as plain data, and the fingerprint of such data.

A job's fingerprint (harness.plan) hashes exactly the configuration the job reads; Snakemake keeps it as
a param, so changing one value re-runs only the jobs whose fingerprint changed. Fields added to a schema
after results existed are left out of that data while unset (the LATER_* lists), so adding a field never
makes earlier results stale.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

LATER_STAGE_FIELDS = ("dataset", "preference_loss", "objective.expert", "args.temporal_residual", "args.num_groups",
                      "args.em_iterations", "parallel", "args.instruction", "environment",
                      "objective.online_filter", "rewards.*.gated_by", "objective.masked_spans",
                      "args.large_gap_share", "data_args.solution_prefix", "data_args.prefix_separator")  # fmt: skip
"""Stage fields added after results existed: left out of fingerprints while unset, so those results stay valid."""
LATER_MODEL_FIELDS = ("revision", "architecture", "toy.max_positions", "toy.init_from")
"""The same for ModelConfig (`gated` is dropped while false)."""
LATER_EVAL_FIELDS = (
    "judges",
    "revisions",
    "instruction",
    "ask",
    "environment",
    "max_turns",
    "judges.*.rewards.*.gated_by",
    "dataset",
)
"""The same for EvalConfig."""
LATER_REPORTED_FIELDS = {"over": None, "checkpoint": "unstated"}
"""Reported-result fields added after results existed, with their defaults: left out while at them."""
LATER_DATASET_FIELDS = ("solution_field", "where", "arithmetic.scratchpad_share", "revision", "prompt_tokens", "url",
                        "sha256", "paraphrase_field", "shipped_instruction", "tests_field", "database_field",
                        "corpus", "text_fields", "split")  # fmt: skip
"""The same for DatasetConfig."""
LATER_GENERATOR_SPECS = {"programs": "toy-programs", "sql": "toy-sql", "traces": "toy-traces",
                         "calculator": "toy-calculator", "retrieval": "toy-retrieval", "verdicts": "toy-verdicts"}  # fmt: skip
"""Generator specs added after results existed (field -> its source): a dataset of another source leaves them out
of its fingerprint (they default to a spec, never None)."""


def to_plain(obj: Any) -> Any:
    """A resolved config (a dataclass) as plain JSON-able data, for hashes, params and logs."""
    return dataclasses.asdict(obj)


LATER_META_FIELDS = ("no_paper_scale",)
"""The same for a bundle's `paper:` section."""


def plain_meta(meta: Any) -> dict:
    """A bundle's `paper:` section as plain data for hashing, without the LATER_META_FIELDS that are unset."""
    return _drop_unset(to_plain(meta), LATER_META_FIELDS)


def plain_stage(stage: Any) -> dict:
    """A resolved stage as plain data for hashing, without the LATER_STAGE_FIELDS that are unset."""
    return _drop_unset(to_plain(stage), LATER_STAGE_FIELDS)


def plain_model(model: Any) -> dict:
    """A model config as plain data for hashing, without the LATER_MODEL_FIELDS that are unset."""
    out = _drop_unset(to_plain(model), LATER_MODEL_FIELDS)
    if not out.get("gated"):
        out.pop("gated", None)
    return out


def plain_dataset(dataset: Any) -> dict:
    """A dataset config as plain data for hashing, without the LATER_DATASET_FIELDS that are unset and the
    LATER_GENERATOR_SPECS of other sources."""
    out = _drop_unset(to_plain(dataset), LATER_DATASET_FIELDS)
    for spec, source in LATER_GENERATOR_SPECS.items():
        if out.get("source") != source:
            out.pop(spec, None)
    return out


def plain_reported(reported: Any) -> dict:
    """A reported result as plain data for hashing, without the LATER_REPORTED_FIELDS at their defaults."""
    out = to_plain(reported)
    return {k: v for k, v in out.items() if k not in LATER_REPORTED_FIELDS or v != LATER_REPORTED_FIELDS[k]}


def plain_eval(cfg: Any) -> dict:
    """An eval suite as plain data for hashing, without the LATER_EVAL_FIELDS that are unset."""
    return _drop_unset(to_plain(cfg), LATER_EVAL_FIELDS)


def _drop_unset(out: dict, fields: tuple[str, ...]) -> dict:
    """`out` without the dotted fields that are None; a `*` part walks every item of a list.

    >>> _drop_unset({"a": None, "r": [{"g": None, "n": 1}, {"g": 0}]}, ("a", "r.*.g"))
    {'r': [{'n': 1}, {'g': 0}]}
    """
    for dotted in fields:
        _drop_path(out, dotted.split("."))
    return out


def _drop_path(holder: Any, parts: list[str]) -> None:
    head, *rest = parts
    if head == "*":
        for item in holder or []:
            _drop_path(item, rest)
    elif rest:
        if holder.get(head) is not None:  # a parent already dropped (unset) has nothing below it
            _drop_path(holder[head], rest)
    elif holder.get(head) is None:
        holder.pop(head, None)


def fingerprint(obj: Any) -> str:
    """A short stable hash of JSON-able data.

    >>> fingerprint({"b": 1, "a": [2.0, None]}) == fingerprint({"a": [2.0, None], "b": 1})
    True
    """
    blob = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
