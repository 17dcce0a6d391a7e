"""Verdicts: does a reproduction match its paper? Pure functions over leaderboard rows.

- A reported number (paper scale) is `reproduced` when the mean over seeds is within a tolerance
  of it, `not reproduced` when outside, `not comparable` when the evaluation protocol differs
  from the one the paper used, `not run` when there is no result for it.
- A claim (a qualitative statement, usually checked at toy scale) `holds`, `does not hold`, is
  `inconclusive` (within seed noise), `saturated` (both variants at the rate's ceiling 1 or floor 0, within the
  noise margin: the run cannot tell them apart) or `not run`.
Seed noise is two standard errors of the mean: sqrt(std^2 / n) per side.
"""

from __future__ import annotations

from harness.config.claims import RATES
from harness.config.plain import to_plain
from harness.config.schema import Claim, ReportedResult
from harness.evaluation.protocol import differences

PROTOCOL_FIELDS = ("n_samples", "temperature", "top_p", "max_new_tokens")

SEED_SPREAD_FLOOR = {"aime24": 0.046, "aime25": 0.046, "amc23": 0.038, "minerva_math500": 0.006}
"""Per benchmark, the least tolerance a `reproduced` verdict allows: the median std of pass@1 over 10 seeds the
Sober Reasoning study measured (arXiv 2504.07086: AIME24 4.6 points, AMC23 3.8, MATH-500 0.6; AIME25, the same
size as AIME24, taken alike). A paper's single-seed number on a small benchmark is no more precise than that."""
FEW_QUESTIONS = 50
"""A claim on a benchmark with fewer questions than this, from one seed, is flagged: its sampling error is large."""


def standard_error(m: dict) -> float:
    return (m.get("std", 0.0) ** 2 / max(1, m.get("n", 1))) ** 0.5


def check_claim(claim: Claim, rows: list[dict], task: str) -> dict:
    """The verdict on `lhs op rhs` for the means over seeds, allowing for seed noise.

    The noise margin is two standard errors of the difference of means. A strict claim (`>`, `<`)
    holds when the difference clears the margin in its direction, does not hold when it is at or
    beyond the margin the other way, and is inconclusive in between. A non-strict claim (`>=`,
    `<=`) holds unless the difference is beyond the margin the wrong way. With one seed (or a
    number on one side and no spread) the margin is 0 and this is the plain comparison.
    """
    by_variant = {r["variant"]: r for r in rows if r["task"] == task}

    def side(ref: str) -> dict | None:
        if ref in by_variant:
            return by_variant[ref]["metrics"].get(claim.metric)
        try:
            return {"mean": float(ref)}
        except ValueError:
            return None

    lhs, rhs = side(claim.lhs), side(claim.rhs)
    out = {**to_plain(claim), "task": task, "lhs_value": lhs and lhs["mean"], "rhs_value": rhs and rhs["mean"]}
    if lhs is None or rhs is None:
        return out | {"verdict": "not run"}
    why = _incomparable([by_variant[v] for v in (claim.lhs, claim.rhs) if v in by_variant])
    if why:
        return out | {"verdict": "not comparable", "why": why}
    margin = 2 * (standard_error(lhs) ** 2 + standard_error(rhs) ** 2) ** 0.5
    diff = lhs["mean"] - rhs["mean"] if claim.op in (">", ">=") else rhs["mean"] - lhs["mean"]
    if claim.op in (">=", "<="):
        verdict = "holds" if diff >= -margin else "does not hold"
    else:
        verdict = "holds" if diff > margin else "does not hold" if diff <= -margin else "inconclusive"
    sides = [by_variant[v] for v in (claim.lhs, claim.rhs) if v in by_variant]
    if len(sides) == 2 and RATES.fullmatch(claim.metric) and (bound := _bound(lhs["mean"], rhs["mean"], margin)):
        return out | {"verdict": "saturated", "margin": margin, "why": f"both sides at the {bound}"}
    questions = min(
        (r["metrics"].get("questions", {}).get("mean", FEW_QUESTIONS) for r in sides), default=FEW_QUESTIONS
    )
    flags = [f"{questions:.0f} questions and one seed: sampling error alone can decide it"] if (
        questions < FEW_QUESTIONS and any(len(r.get("seeds", [])) == 1 for r in sides)) else []  # fmt: skip
    return out | {"verdict": verdict, "margin": margin} | ({"flags": flags} if flags else {})


SATURATION = 0.005
"""How near 1 (or 0) both sides of a claim on a rate must be, at least, to be at its ceiling (floor)."""


def _bound(a: float, b: float, margin: float) -> str | None:
    """'ceiling (1)' or 'floor (0)' when both rates sit within the noise margin of it, else None.

    >>> _bound(1.0, 0.999, 0.0), _bound(0.0, 0.01, 0.02), _bound(0.9, 1.0, 0.05)
    ('ceiling (1)', 'floor (0)', None)
    """
    near = max(margin, SATURATION)
    if min(a, b) >= 1 - near:
        return "ceiling (1)"
    if max(a, b) <= near:
        return "floor (0)"
    return None


def _incomparable(rows: list[dict]) -> str:
    """Why results in these leaderboard rows were measured under different protocols ('' if they were not)."""
    why = [f"{r['variant']} {d}" for r in rows for d in r.get("protocol_departures", [])]
    if len(rows) == 2:
        why += [
            f"{rows[0]['variant']} vs {rows[1]['variant']}: {d}"
            for d in differences(rows[0].get("protocol", {}), rows[1].get("protocol", {}))
        ]
    return "; ".join(why)


def check_reported(reported: ReportedResult, rows: list[dict]) -> dict:
    """The verdict on one reported number against the leaderboard rows of its scale.

    Tolerance: the largest of `reported.tolerance`, two standard errors of the difference (the reproduction's seed
    noise and the paper's own stated spread, when given) and the benchmark's seed-spread floor (SEED_SPREAD_FLOOR);
    the result names which one it used (`tolerance_from`).
    """
    out = {**to_plain(reported), "reproduced": None, "ci": None, "delta": None}
    if reported.checkpoint == "best_on_test":
        out["flags"] = ["the paper's checkpoint was chosen on this benchmark (best on test): an optimistic number; "
                        "ours is the final one"]  # fmt: skip

    def find(variant: str) -> dict | None:
        return next((r for r in rows if r["variant"] == variant and r["task"] == reported.benchmark), None)

    row, base = find(reported.variant), find(reported.over) if reported.over else None
    m = row and row["metrics"].get(reported.metric)
    b = base and base["metrics"].get(reported.metric)
    if m is None or (reported.over and b is None):
        return out | {"verdict": "not run"}
    ours = m["mean"] - (b["mean"] if b else 0.0)  # a gain: ours over our own baseline, as the paper's over its
    se = (standard_error(m) ** 2 + (standard_error(b) ** 2 if b else 0.0)) ** 0.5
    out |= {"reproduced": ours, "ci": 2 * se, "delta": ours - reported.value, "n_seeds": m.get("n", 1)}
    differs = [
        f
        for f in PROTOCOL_FIELDS
        if getattr(reported, f) is not None and row["protocol"].get(f) != getattr(reported, f)
    ]
    if differs or row.get("protocol_departures"):
        detail = ", ".join(f"{f}: paper {getattr(reported, f)} vs ours {row['protocol'].get(f)}" for f in differs)
        return out | {"verdict": "not comparable", "why": detail or _incomparable([row])}
    if base is not None and (why := _incomparable([row, base])):
        return out | {"verdict": "not comparable", "why": why}
    candidates = {"the bundle's tolerance": reported.tolerance,
                  "seed noise": 2 * (se**2 + (reported.spread or 0.0) ** 2) ** 0.5,
                  f"{reported.benchmark}'s seed-spread floor": SEED_SPREAD_FLOOR.get(reported.benchmark, 0.0)}  # fmt: skip
    source, tolerance = max(candidates.items(), key=lambda kv: kv[1])
    verdict = "reproduced" if abs(out["delta"]) <= tolerance else "not reproduced"
    return out | {"verdict": verdict, "tolerance": tolerance, "tolerance_from": source}


def one_line(claims: list[dict], reported: list[dict]) -> str:
    """A paper's verdicts in one line, e.g. `claims: 2 hold, 1 inconclusive; reported: 0/2 reproduced, 2 not run`."""

    def count(items: list[dict], order: tuple[str, ...]) -> str:
        seen = [v for v in order if any(i["verdict"] == v for i in items)]
        return ", ".join(f"{sum(i['verdict'] == v for i in items)} {v}" for v in seen) or "none"

    repro = sum(r["verdict"] == "reproduced" for r in reported)
    return (f"claims: {count(claims, ('holds', 'does not hold', 'inconclusive', 'saturated', 'not comparable', 'not run'))}; "
            f"reported: {repro}/{len(reported)} reproduced"
            + (f" ({count(reported, ('not reproduced', 'not comparable', 'not run'))})" if len(reported) > repro else ""))  # fmt: skip
