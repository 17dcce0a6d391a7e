"""harness.reporting.leaderboard: aggregation over seeds, claim verdicts and the Markdown leaderboard."""

from __future__ import annotations

import pytest

from harness.config.schema import Claim
from harness.reporting.leaderboard import aggregate, format_board
from harness.reporting.verdicts import check_claim


def test_aggregate_two_seeds():
    # mean (0.5 + 0.7)/2 = 0.6; sample std sqrt((0.1^2 + 0.1^2)/1) = sqrt(0.02) = 0.141421
    agg = aggregate([0.5, 0.7])
    assert agg["mean"] == pytest.approx(0.6)
    assert agg["std"] == pytest.approx(0.02**0.5)
    assert agg["n"] == 2 and agg["values"] == [0.5, 0.7]


def test_aggregate_four_seeds():
    # mean 2.5; squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5; sample std sqrt(5/3) = 1.290994
    agg = aggregate([1.0, 2.0, 3.0, 4.0])
    assert agg["mean"] == pytest.approx(2.5)
    assert agg["std"] == pytest.approx((5 / 3) ** 0.5)


def test_aggregate_single_seed_has_std_zero():
    assert aggregate([0.3]) == {"mean": 0.3, "std": 0.0, "n": 1, "values": [0.3]}


def row(variant: str, task: str = "toy_arith", **metrics: float) -> dict:
    return {"variant": variant, "task": task, "metrics": {k.replace("_", "@"): {"mean": v} for k, v in metrics.items()}}


ROWS = [row("a", pass_1=0.6, pass_8=0.8), row("b", pass_1=0.5, pass_8=0.9), row("b", task="other", pass_1=0.1)]


def claim(lhs: str, op: str, rhs: str, metric: str = "pass@1") -> Claim:
    return Claim(statement=f"{lhs} {op} {rhs}", lhs=lhs, op=op, rhs=rhs, metric=metric)


def test_claim_holds():
    out = check_claim(claim("a", ">", "b"), ROWS, "toy_arith")  # 0.6 > 0.5
    assert out["verdict"] == "holds"
    assert out["lhs_value"] == 0.6 and out["rhs_value"] == 0.5
    assert out["task"] == "toy_arith" and out["statement"] == "a > b"


def test_a_claim_on_few_questions_from_one_seed_is_flagged():
    def aime(variant: str, seeds: list[int], mean: float) -> dict:
        return {"variant": variant, "task": "aime24", "seeds": seeds,
                "metrics": {"pass@1": {"mean": mean}, "questions": {"mean": 30}}}  # fmt: skip

    one_seed = check_claim(claim("a", ">", "b"), [aime("a", [0], 0.4), aime("b", [0], 0.3)], "aime24")
    assert one_seed["verdict"] == "holds" and one_seed["flags"] == [
        "30 questions and one seed: sampling error alone can decide it"
    ]
    three = check_claim(claim("a", ">", "b"), [aime("a", [0, 1, 2], 0.4), aime("b", [0, 1, 2], 0.3)], "aime24")
    assert "flags" not in three
    assert "flags" not in check_claim(claim("a", ">", "b"), ROWS, "toy_arith")  # no question count: not flagged


def test_claim_does_not_hold():
    assert check_claim(claim("a", ">", "b", metric="pass@8"), ROWS, "toy_arith")["verdict"] == "does not hold"


def test_claim_reads_only_its_task():
    # on task "other" b scores 0.1 and a did not run
    assert check_claim(claim("b", "<", "0.2"), ROWS, "other")["verdict"] == "holds"
    assert check_claim(claim("a", ">", "b"), ROWS, "other")["verdict"] == "not run"


@pytest.mark.parametrize(
    "the_claim",
    [claim("ghost", ">", "b"), claim("a", ">", "ghost"), claim("a", ">", "b", metric="maj@8")],
    ids=["lhs-missing", "rhs-missing", "metric-missing"],
)
def test_claim_not_run(the_claim):
    out = check_claim(the_claim, ROWS, "toy_arith")
    assert out["verdict"] == "not run"
    assert None in (out["lhs_value"], out["rhs_value"])


def test_claim_numeric_rhs():
    assert check_claim(claim("a", ">=", "0.6"), ROWS, "toy_arith")["verdict"] == "holds"  # 0.6 >= 0.6
    out = check_claim(claim("a", ">", "0.75"), ROWS, "toy_arith")  # 0.6 > 0.75 is false
    assert out["verdict"] == "does not hold" and out["rhs_value"] == 0.75


# lhs 0.4, 0.5, 0.6 against rhs 0.5
@pytest.mark.parametrize(
    ("op", "expected"),
    [
        (">", ["does not hold", "does not hold", "holds"]),
        (">=", ["does not hold", "holds", "holds"]),
        ("<", ["holds", "does not hold", "does not hold"]),
        ("<=", ["holds", "holds", "does not hold"]),
    ],
)
def test_claim_each_operator(op, expected):
    rows = [row("x", pass_1=0.4), row("y", pass_1=0.5), row("z", pass_1=0.6), row("r", pass_1=0.5)]
    assert [check_claim(claim(v, op, "r"), rows, "toy_arith")["verdict"] for v in "xyz"] == expected


def board_row(variant: str, rank: int, p1: list[float], p4: list[float]) -> dict:
    return {
        "variant": variant, "task": "toy_arith", "model": "toy-arith", "seeds": [0, 1], "rank": rank,
        "metrics": {"pass@1": aggregate(p1), "pass@4": aggregate(p4)},
        "protocol": {"n_samples": 4, "temperature": 1.0},
    }  # fmt: skip


def test_the_board_lists_the_bundles_departures_from_its_paper():
    board = {"paper": "p", "scale": "paper", "title": "t", "rows": [], "claims": [], "reported": [],
             "deviations": [{"field": "kl", "paper": "0.001", "ours": "none", "why": "not built", "scale": "paper"}]}  # fmt: skip
    text = format_board(board)
    assert "Where this bundle departs from the paper" in text and "- kl: paper 0.001, ours none (not built)" in text
    assert "departs" not in format_board(board | {"deviations": []})


def test_format_board():
    board = {
        "paper": "demo-paper",
        "scale": "toy",
        "title": "A demo",
        "rows": [board_row("vote", 1, [0.5, 0.7], [0.9, 0.9]), board_row("base", 2, [0.4, 0.4], [0.8, 1.0])],
        "claims": [
            {
                "statement": "vote beats base",
                "verdict": "holds",
                "lhs": "vote",
                "op": ">",
                "rhs": "base",
                "lhs_value": 0.6,
                "rhs_value": 0.4,
                "metric": "pass@1",
            },
            {
                "statement": "weak vote beats weak base",
                "verdict": "not run",
                "lhs": "w",
                "op": ">",
                "rhs": "wb",
                "lhs_value": None,
                "rhs_value": None,
                "metric": "pass@1",
            },
        ],  # fmt: skip
        "reported": [
            {
                "variant": "vote",
                "benchmark": "aime25",
                "metric": "pass@1",
                "value": 0.046,
                "model": "Qwen",
                "source": "abs",
            }
        ],
    }
    text = format_board(board)
    assert text.startswith("## demo-paper [toy]: A demo")
    assert "4 samples/question, temperature 1.0" in text
    assert "| rank | variant | model | pass@1 | maj@4 | pass@4 | seeds |" in text
    # vote: pass@1 mean 0.6, std sqrt(0.02) = 0.141; maj@4 absent -> "-"; pass@4 0.9 +- 0
    assert "| 1 | vote | toy-arith | 0.600 ± 0.141 | - | 0.900 ± 0.000 | 2 |" in text
    # base: pass@4 mean 0.9, std sqrt(0.02) = 0.141
    assert "| 2 | base | toy-arith | 0.400 ± 0.000 | - | 0.900 ± 0.141 | 2 |" in text
    assert text.index("| 1 | vote |") < text.index("| 2 | base |")
    assert "- [holds] vote beats base (pass@1: vote 0.600 vs base 0.400, noise margin 0.000)" in text
    assert "- [not run] weak vote beats weak base" in text
    assert "- [not run] vote on aime25 pass@1 = 0.046 (Qwen, paper scale; abs)" in text


def test_format_board_without_claims_or_reported():
    board = {"paper": "p", "scale": "toy", "title": "t", "rows": [board_row("base", 1, [0.2], [0.3])],
             "claims": [], "reported": []}  # fmt: skip
    text = format_board(board)
    assert "| 1 | base | toy-arith | 0.200 ± 0.000 | - | 0.300 ± 0.000 | 2 |" in text
    assert "Claims:" not in text and "Reported" not in text


def test_format_board_shows_the_suites_judges():
    row = board_row("base", 1, [0.2], [0.3])
    row["metrics"] |= {"judge/terse": aggregate([0.5, 0.7]), "judge/min": aggregate([0.4])}
    text = format_board({"paper": "p", "scale": "toy", "title": "t", "rows": [row], "claims": [], "reported": []})
    assert "| pass@1 | maj@4 | pass@4 | judge/terse | judge/min | seeds |" in text
    assert "| 0.300 ± 0.000 | 0.600 ± 0.141 | 0.400 ± 0.000 | 2 |" in text


def spread_row(variant: str, values: list[float]) -> dict:
    return {"variant": variant, "task": "toy_arith", "metrics": {"pass@1": aggregate(values)}}


def test_claim_within_seed_noise_is_inconclusive():
    # a: mean 0.60, std 0.1 (3 seeds); b: mean 0.55, std 0.1. se = sqrt(0.01/3 + 0.01/3) = 0.0816,
    # margin 0.163 > difference 0.05: a strict claim cannot be decided.
    rows = [spread_row("a", [0.5, 0.6, 0.7]), spread_row("b", [0.45, 0.55, 0.65])]
    out = check_claim(claim("a", ">", "b"), rows, "toy_arith")
    assert out["verdict"] == "inconclusive" and out["margin"] == pytest.approx(2 * (0.02 / 3) ** 0.5)
    assert check_claim(claim("b", "<", "a"), rows, "toy_arith")["verdict"] == "inconclusive"
    # non-strict: "a >= b" and even "b >= a" hold (neither is worse beyond the noise)
    assert check_claim(claim("a", ">=", "b"), rows, "toy_arith")["verdict"] == "holds"
    assert check_claim(claim("b", ">=", "a"), rows, "toy_arith")["verdict"] == "holds"


def test_claim_beyond_seed_noise_is_decided():
    # a: 0.80 +- 0.01, b: 0.50 +- 0.01; margin 2*sqrt(2*0.0001/3) = 0.0163 << 0.3
    rows = [spread_row("a", [0.79, 0.80, 0.81]), spread_row("b", [0.49, 0.50, 0.51])]
    assert check_claim(claim("a", ">", "b"), rows, "toy_arith")["verdict"] == "holds"
    assert check_claim(claim("b", ">", "a"), rows, "toy_arith")["verdict"] == "does not hold"
    assert check_claim(claim("b", ">=", "a"), rows, "toy_arith")["verdict"] == "does not hold"
    assert check_claim(claim("a", "<=", "b"), rows, "toy_arith")["verdict"] == "does not hold"


def test_suite_average_counts_a_group_once_and_skips_counts():
    from harness.reporting.leaderboard import with_average

    metrics = {
        "aime24": {"pass@1": 0.2, "pass@2": 0.3, "questions": 30},
        "mmlu_pro": {"pass@1": 0.5, "pass@2": 0.6, "questions": 100, "subtasks": ["mmlu_pro_law", "mmlu_pro_math"]},
        "mmlu_pro_law": {"pass@1": 0.1, "pass@2": 0.2},
        "mmlu_pro_math": {"pass@1": 0.9, "pass@2": 1.0},
        "arc_mc": {"lm_eval": {"acc": 0.7}},  # no sampling metrics: not averaged
    }
    avg = with_average(metrics)["average"]
    assert avg["tasks"] == ["aime24", "mmlu_pro"]
    assert avg["pass@1"] == pytest.approx(0.35) and avg["pass@2"] == pytest.approx(0.45)
    assert "questions" not in avg
