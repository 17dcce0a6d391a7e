"""Reported-vs-reproduced verdicts on constructed leaderboard rows (claims: tests/test_report.py)."""

from __future__ import annotations

import pytest

from harness.config.schema import ReportedResult
from harness.reporting.leaderboard import aggregate
from harness.reporting.verdicts import check_reported, one_line


def reported(**kw) -> ReportedResult:
    base = dict(benchmark="olympiadbench", metric="pass@1", value=0.40, variant="rl", model="Qwen/Qwen3-4B-Base",
                n_samples=16, temperature=0.6, source="Table 1")  # fmt: skip
    return ReportedResult(**base | kw)


def rows(values: list[float], n_samples: int = 16, temperature: float = 0.6, task: str = "olympiadbench") -> list[dict]:
    return [{"variant": "rl", "task": task, "metrics": {"pass@1": aggregate(values)},
             "protocol": {"n_samples": n_samples, "temperature": temperature}}]  # fmt: skip


def test_within_tolerance_is_reproduced():
    # mean 0.395, std 0.005 over 3 seeds: se 0.00289, 2 se 0.0058 < floor 0.01; |delta| 0.005 <= 0.01
    out = check_reported(reported(), rows([0.39, 0.395, 0.40]))
    assert out["verdict"] == "reproduced"
    assert out["delta"] == pytest.approx(-0.005) and out["tolerance"] == pytest.approx(0.01)
    assert out["ci"] == pytest.approx(2 * 0.005 / 3**0.5)


def test_outside_tolerance_is_not_reproduced():
    out = check_reported(reported(), rows([0.30, 0.31, 0.32]))  # delta -0.09, tolerance 0.01
    assert out["verdict"] == "not reproduced" and out["delta"] == pytest.approx(-0.09)


def test_seed_noise_and_the_papers_spread_widen_the_tolerance():
    # ours 0.35 +- 0.05 over 3 seeds: se 0.0289, tolerance 2 se = 0.0577 >= |delta| 0.05
    noisy = check_reported(reported(), rows([0.30, 0.35, 0.40]))
    assert noisy["verdict"] == "reproduced" and noisy["tolerance"] == pytest.approx(2 * 0.05 / 3**0.5)
    # ours 0.33 +- 0.01: tolerance max(0.01, 2 * 0.00577) = 0.0115 < |delta| 0.07 ...
    tight = rows([0.32, 0.33, 0.34])
    assert check_reported(reported(), tight)["verdict"] == "not reproduced"
    # ... unless the paper itself reports a spread of 0.04: 2 * sqrt(0.00577^2 + 0.04^2) = 0.0808
    widened = check_reported(reported(spread=0.04), tight)
    assert widened["tolerance"] == pytest.approx(2 * ((0.01 / 3**0.5) ** 2 + 0.04**2) ** 0.5)
    assert widened["verdict"] == "reproduced"


def test_a_small_benchmark_never_gets_less_tolerance_than_its_seed_spread():
    # AIME25 (30 questions): tight seeds (2 se 0.0115) and the bundle's 0.01 give way to the 0.046 floor
    tight = rows([0.35, 0.36, 0.37], task="aime25")
    out = check_reported(reported(benchmark="aime25"), tight)
    assert out["tolerance"] == pytest.approx(0.046) and out["tolerance_from"] == "aime25's seed-spread floor"
    assert out["delta"] == pytest.approx(-0.04) and out["verdict"] == "reproduced"  # inside the floor
    assert check_reported(reported(benchmark="aime25", value=0.42), tight)["verdict"] == "not reproduced"
    # a benchmark without a floor keeps the larger of the others
    assert check_reported(reported(), rows([0.35, 0.36, 0.37]))["tolerance_from"] == "seed noise"


def test_a_reported_gain_is_checked_against_our_own_baseline():
    def two(rl: list[float], base: list[float], base_temperature: float = 0.6) -> list[dict]:
        base_row = rows(base, temperature=base_temperature)[0] | {"variant": "base"}
        return rows(rl) + [base_row]

    gain = reported(value=0.24, over="base")  # "+24 points over the base"
    out = check_reported(gain, two([0.60, 0.61, 0.62], [0.36, 0.37, 0.38]))
    assert out["reproduced"] == pytest.approx(0.24) and out["verdict"] == "reproduced"
    assert check_reported(gain, two([0.50, 0.51, 0.52], [0.36, 0.37, 0.38]))["verdict"] == "not reproduced"
    assert check_reported(gain, rows([0.6]))["verdict"] == "not run"  # no baseline run
    differs = check_reported(gain, two([0.60], [0.36], base_temperature=1.0))
    assert differs["verdict"] == "not comparable" and "temperature" in differs["why"]


def test_a_number_picked_on_the_test_set_is_flagged():
    picked = check_reported(reported(checkpoint="best_on_test"), rows([0.39, 0.40, 0.41]))
    assert picked["verdict"] == "reproduced" and "best on test" in picked["flags"][0]
    assert "flags" not in check_reported(reported(checkpoint="final"), rows([0.39, 0.40, 0.41]))


def test_different_protocol_is_not_comparable():
    out = check_reported(reported(), rows([0.40, 0.40], n_samples=8))
    assert out["verdict"] == "not comparable" and "n_samples: paper 16 vs ours 8" in out["why"]
    out = check_reported(reported(), rows([0.40, 0.40], temperature=1.0))
    assert out["verdict"] == "not comparable" and "temperature" in out["why"]
    # a protocol field the paper does not state is not compared
    assert check_reported(reported(temperature=None), rows([0.40], temperature=1.0))["verdict"] == "reproduced"


@pytest.mark.parametrize("the_rows", [[], rows([0.4], task="aime24")], ids=["no-runs", "other-benchmark"])
def test_missing_result_is_not_run(the_rows):
    out = check_reported(reported(), the_rows)
    assert out["verdict"] == "not run" and out["reproduced"] is None


def test_one_line_summary():
    claims = [{"verdict": "holds"}, {"verdict": "holds"}, {"verdict": "inconclusive"}]
    reps = [{"verdict": "reproduced"}, {"verdict": "not run"}, {"verdict": "not comparable"}]
    assert (
        one_line(claims, reps)
        == "claims: 2 holds, 1 inconclusive; reported: 1/3 reproduced (1 not comparable, 1 not run)"
    )
    assert one_line([], []) == "claims: none; reported: 0/0 reproduced"


def test_a_claim_whose_sides_sit_at_the_ceiling_or_floor_is_saturated():
    from harness.config.schema import Claim
    from harness.reporting.verdicts import check_claim

    def board(a: list[float], b: list[float], metric: str = "pass@8") -> list[dict]:
        return [{"variant": v, "task": "t", "metrics": {metric: aggregate(x)}, "seeds": [0, 1, 2]}
                for v, x in (("rl", a), ("base", b))]  # fmt: skip

    no_rise = Claim(statement="pass@8 does not rise above the base's", metric="pass@8", lhs="rl", op="<=", rhs="base")
    top = check_claim(no_rise, board([1.0, 1.0, 1.0], [1.0, 1.0, 1.0]), "t")
    assert top["verdict"] == "saturated" and top["why"] == "both sides at the ceiling (1)"
    helps = Claim(statement="vote helps the weak base", metric="pass@1", lhs="rl", op=">", rhs="base")
    bottom = check_claim(helps, board([0.0, 0.004, 0.0], [0.0, 0.0, 0.002], "pass@1"), "t")
    assert bottom["verdict"] == "saturated" and bottom["why"] == "both sides at the floor (0)"
    assert one_line([top, bottom], []) == "claims: 2 saturated; reported: 0/0 reproduced"
    # one side off the ceiling beyond the noise: a real verdict
    assert check_claim(no_rise, board([0.90, 0.91, 0.92], [1.0, 1.0, 1.0]), "t")["verdict"] == "holds"
    # a threshold is no measured side: never saturated
    at_least = Claim(statement="solves everything", metric="pass@8", lhs="rl", op=">=", rhs="1.0")
    assert check_claim(at_least, board([1.0, 1.0, 1.0], [1.0, 1.0, 1.0]), "t")["verdict"] == "holds"
