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


def one_line_metrics(result: dict) -> str:
    """pass@1, pass@n and maj@n per task (lm-eval's own metrics for tasks without samples to grade)."""
    lines = []
    for task, m in result["metrics"].items():
        if "samples_per_question" not in m:
            lines.append(f"{task}: " + "  ".join(f"{k} {v:.3f}" for k, v in m.get("lm_eval", {}).items()))
            continue
        n = m["samples_per_question"]
        more = f"  pass@{n} {m[f'pass@{n}']:.3f}  maj@{n} {m[f'maj@{n}']:.3f}" if n > 1 else " (one sample)"
        lines.append(f"{task}: pass@1 {m['pass@1']:.3f}{more}")
    return "\n".join(lines)
