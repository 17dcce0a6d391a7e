"""Leaderboards: per paper, scale and benchmark, variants ranked by mean over seeds, with claims.

`summarize_paper` reads the runs' eval files (the source of truth), writes leaderboard.json and
leaderboard.md beside them and mirrors the numbers into MLflow; `print_leaderboards` prints them.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from harness import plan as P
from harness.config import Claim, to_plain

SHOWN = ("pass@1", "maj@{n}", "pass@{n}")


def aggregate(values: list[float]) -> dict:
    """Mean and sample standard deviation over seeds (std 0 for a single seed).

    >>> aggregate([0.5, 0.7])["mean"], round(aggregate([0.5, 0.7])["std"], 4)
    (0.6, 0.1414)
    """
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values), "values": values}  # fmt: skip


def leaderboard_rows(plan, paper: str) -> list[dict]:
    rp = plan.papers[paper]
    rows = []
    for variant in rp.variants:
        results = [json.loads(Path(P.eval_file(plan.run(paper, variant, s))).read_text()) for s in rp.seeds]
        for task in results[0]["metrics"]:
            keys = [k for k, v in results[0]["metrics"][task].items() if isinstance(v, (int, float))]
            rows.append({
                "variant": variant, "task": task, "model": rp.variants[variant].model, "seeds": list(rp.seeds),
                "metrics": {k: aggregate([r["metrics"][task][k] for r in results]) for k in keys},
                "protocol": {k: v for k, v in results[0]["fingerprint"].items() if k != "seed"},
            })  # fmt: skip
    rows.sort(key=lambda r: (r["task"], -r["metrics"]["pass@1"]["mean"]))
    for task in {r["task"] for r in rows}:
        for rank, r in enumerate((r for r in rows if r["task"] == task), 1):
            r["rank"] = rank
    return rows


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
    margin = 2 * sum(m.get("std", 0.0) ** 2 / m.get("n", 1) for m in (lhs, rhs)) ** 0.5
    diff = lhs["mean"] - rhs["mean"] if claim.op in (">", ">=") else rhs["mean"] - lhs["mean"]
    if claim.op in (">=", "<="):
        verdict = "holds" if diff >= -margin else "does not hold"
    else:
        verdict = "holds" if diff > margin else "does not hold" if diff <= -margin else "inconclusive"
    return out | {"verdict": verdict, "margin": margin}


def summarize_paper(plan, paper: str) -> dict:
    from harness.tracking import log_summary

    rp = plan.papers[paper]
    rows = leaderboard_rows(plan, paper)
    task = rows[0]["task"]
    claims = [check_claim(c, rows, task) for c in rp.claims if c.scale == plan.scale]
    board = {"paper": paper, "title": rp.meta.title, "scale": plan.scale, "rows": rows, "claims": claims,
             "reported": [to_plain(r) for r in rp.reported]}  # fmt: skip
    out = Path(P.leaderboard_file(paper, plan.scale))
    out.write_text(json.dumps(board, indent=1))
    md = out.with_suffix(".md")
    md.write_text(format_board(board))
    log_summary(paper, plan.scale, board, [out, md])
    print(format_board(board))
    return board


def _cell(m: dict | None) -> str:
    return "-" if m is None else f"{m['mean']:.3f} ± {m['std']:.3f}"


def format_board(board: dict) -> str:
    lines = [f"## {board['paper']} [{board['scale']}]: {board['title']}", ""]
    for task in dict.fromkeys(r["task"] for r in board["rows"]):
        rows = [r for r in board["rows"] if r["task"] == task]
        proto = rows[0]["protocol"]
        n = proto["n_samples"]
        cols = [c.format(n=n) for c in SHOWN]
        lines += [f"{task}: mean ± std over seeds; {n} samples/question, temperature {proto['temperature']}", ""]
        lines += ["| rank | variant | model | " + " | ".join(cols) + " | seeds |", "|---" * (len(cols) + 4) + "|"]
        for r in rows:
            cells = " | ".join(_cell(r["metrics"].get(c)) for c in cols)
            lines.append(f"| {r['rank']} | {r['variant']} | {r['model']} | {cells} | {len(r['seeds'])} |")
        lines.append("")
    if board["claims"]:
        lines.append("Claims:")
        for c in board["claims"]:
            vals = ""
            if c["verdict"] != "not run":
                vals = (f" ({c['metric']}: {c['lhs']} {c['lhs_value']:.3f} vs {c['rhs']} {c['rhs_value']:.3f},"
                        f" noise margin {c.get('margin', 0.0):.3f})")  # fmt: skip
            lines.append(f"- [{c['verdict']}] {c['statement']}{vals}")
        lines.append("")
    if board["reported"]:
        lines.append("Reported by the paper (paper scale):")
        for r in board["reported"]:
            lines.append(
                f"- {r['variant']} on {r['benchmark']} {r['metric']} = {r['value']} ({r['model']}; {r['source']})"
            )
        lines.append("")
    return "\n".join(lines)


def print_leaderboards(papers: list[str], scale: str | None, results: Path) -> int:
    files = sorted(results.glob("runs/*/*/leaderboard.json"))
    boards = [json.loads(f.read_text()) for f in files]
    boards = [b for b in boards if (not papers or b["paper"] in papers) and (scale is None or b["scale"] == scale)]
    if not boards:
        print(f"no leaderboards under {results}/runs: run `snakemake --cores 2` first", file=sys.stderr)
        return 1
    print("\n".join(format_board(b) for b in boards))
    return 0
