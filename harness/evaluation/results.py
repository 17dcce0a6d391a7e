"""An evaluation's result file (metrics.json): what `evaluate` writes and every reader reads.

    model     the model folder (or hub id) evaluated
    metrics   per task (and group, and with two or more tasks their plain average at report time): the
              sampling metrics (pass@k, maj@k, ...), the counts of what was graded (`samples_per_question`,
              `questions`), lm-eval's own numbers under `lm_eval`, judges' scores (`judge/<name>`)
    protocol  what makes two results comparable (harness/evaluation/protocol.py compares them)
    seconds   wall time

Results written before the names were settled are read in today's names: their `fingerprint` is the
protocol, their `protocol` (a copy of the suite's config) is dropped, and per-task `n_samples` /
`n_questions` are the counts.
"""

from __future__ import annotations

import json
from pathlib import Path

_OLD_COUNTS = {"n_samples": "samples_per_question", "n_questions": "questions"}


def read_result(file: Path | str) -> dict:
    """A metrics.json in today's names."""
    return upgrade(json.loads(Path(file).read_text()))


def upgrade(result: dict) -> dict:
    """`result` in today's names (unchanged when it already uses them).

    >>> upgrade({"metrics": {"t": {"pass@1": 0.5, "n_samples": 4}}, "fingerprint": {"seed": 0}, "protocol": {"x": 1}})
    {'metrics': {'t': {'pass@1': 0.5, 'samples_per_question': 4}}, 'protocol': {'seed': 0}}
    """
    out = dict(result)
    if "fingerprint" in out:
        out.pop("protocol", None)
        out["protocol"] = out.pop("fingerprint")
    out["metrics"] = {
        task: {_OLD_COUNTS.get(k, k): v for k, v in m.items()} for task, m in (out.get("metrics") or {}).items()
    }
    return out
