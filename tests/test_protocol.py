"""Evaluation protocols: compared field by field, and every comparison says when they differ."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.config.schema import Claim, ReportedResult
from harness.evaluation.protocol import common, differences
from harness.reporting.leaderboard import format_board
from harness.reporting.verdicts import check_claim, check_reported, one_line

FP = {"n_samples": 8, "temperature": 1.0, "top_p": 1.0, "max_new_tokens": 8, "engine": "hf", "seed": 0}


def test_differences_ignore_seeds_and_name_every_other_field():
    assert differences(FP, FP | {"seed": 7}) == []
    assert differences(FP, FP | {"engine": "vllm", "n_samples": 4}) == ["engine: hf vs vllm", "n_samples: 8 vs 4"]
    assert differences(FP, {k: v for k, v in FP.items() if k != "engine"}) == ["engine: hf vs (not recorded)"]


def test_common_reports_departures_by_index():
    shared, departures = common([FP, FP | {"seed": 1}, FP | {"temperature": 0.6}])
    assert "seed" not in shared and shared["temperature"] == 1.0
    assert departures == {2: ["temperature: 1.0 vs 0.6"]}


def _row(variant, mean, protocol=None, departures=()):
    return {"variant": variant, "task": "t", "metrics": {"pass@1": {"mean": mean, "std": 0.0, "n": 3}},
            "protocol": protocol or {k: v for k, v in FP.items() if k != "seed"},
            "protocol_departures": list(departures)}  # fmt: skip


def test_claim_between_rows_of_different_protocols_is_not_comparable():
    claim = Claim(statement="rl beats base", lhs="rl", op=">", rhs="base")
    same = check_claim(claim, [_row("rl", 0.5), _row("base", 0.3)], "t")
    assert same["verdict"] == "holds"
    other = {k: v for k, v in FP.items() if k != "seed"} | {"n_samples": 4}
    out = check_claim(claim, [_row("rl", 0.5, other), _row("base", 0.3)], "t")
    assert out["verdict"] == "not comparable"
    assert "rl vs base: n_samples: 4 vs 8" in out["why"]
    assert "not comparable" in one_line([out], [])


def test_a_row_whose_seeds_differ_in_protocol_is_not_comparable():
    claim = Claim(statement="rl beats base", lhs="rl", op=">", rhs="base")
    out = check_claim(claim, [_row("rl", 0.5, departures=["seed 2: engine: hf vs vllm"]), _row("base", 0.3)], "t")
    assert out["verdict"] == "not comparable" and "seed 2: engine: hf vs vllm" in out["why"]
    reported = ReportedResult(benchmark="t", metric="pass@1", value=0.5, variant="rl", model="m", source="s")
    rows = [_row("rl", 0.5, departures=["seed 2: engine: hf vs vllm"])]
    assert check_reported(reported, rows)["verdict"] == "not comparable"


def test_reported_number_under_another_sampling_length_is_not_comparable():
    reported = ReportedResult(benchmark="t", metric="pass@1", value=0.5, variant="rl", model="m", source="s",
                              max_new_tokens=32768)  # fmt: skip
    out = check_reported(reported, [_row("rl", 0.5)])
    assert out["verdict"] == "not comparable" and "max_new_tokens: paper 32768 vs ours 8" in out["why"]
    assert (
        check_reported(reported.__class__(**{**reported.__dict__, "max_new_tokens": 8}), [_row("rl", 0.5)])["verdict"]
        == "reproduced"
    )


def test_leaderboard_text_says_when_protocols_differ():
    claim = Claim(statement="rl beats base", lhs="rl", op=">", rhs="base")
    rows = [_row("rl", 0.5, departures=["seed 1: temperature: 1.0 vs 0.6"]), _row("base", 0.3)]
    for rank, r in enumerate(rows, 1):
        r |= {"rank": rank, "model": "m", "seeds": [0, 1]}
    board = {"paper": "p", "title": "T", "scale": "toy", "rows": rows, "claims": [check_claim(claim, rows, "t")],
             "reported": []}  # fmt: skip
    text = format_board(board)
    assert "protocol differs between seeds of rl: seed 1: temperature: 1.0 vs 0.6" in text
    assert "[not comparable] rl beats base" in text and "protocols differ:" in text


def _result(tmp_path, name, legacy=False, **fp):
    """An eval folder; `legacy`: metrics.json in the names results were written with before they were settled
    (`fingerprint` for the protocol, a suite copy under `protocol`, `n_samples` for the count)."""
    d = tmp_path / name
    d.mkdir()
    count = "n_samples" if legacy else "samples_per_question"
    metrics = {"t": {"pass@1": 0.25, "pass@2": 0.4, "pass@3": 0.5, "maj@2": 0.3, count: 3, "subtasks": ["t_a"],
                     "lm_eval": {"acc": 0.5}}}  # fmt: skip
    fields = {"fingerprint": FP | fp, "protocol": {"tasks": ["t"]}} if legacy else {"protocol": FP | fp}
    (d / "metrics.json").write_text(json.dumps({"metrics": metrics} | fields))
    return d


@pytest.mark.parametrize("legacy", [False, True], ids=["today", "legacy-names"])
@pytest.mark.parametrize("fp, rc, says", [({"seed": 3}, 0, "same protocol"),
                                          ({"temperature": 0.6}, 1, "temperature: 1.0 vs 0.6")])  # fmt: skip
def test_compare_command(tmp_path, fp, rc, says, legacy):
    a, b = _result(tmp_path, "a"), _result(tmp_path, "b", legacy=legacy, **fp)
    proc = subprocess.run([sys.executable, "-m", "harness", "compare", str(a), str(b / "metrics.json")],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == rc, proc.stderr
    assert says in proc.stdout
    assert "pass@2" in proc.stdout and "pass@3" not in proc.stdout  # powers of two only
