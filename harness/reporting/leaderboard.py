"""Leaderboards: per paper, scale and benchmark, variants ranked by mean over seeds, with verdicts.

`summarize_paper` reads the runs' eval files (the source of truth), writes leaderboard.json and
leaderboard.md beside them and mirrors the numbers into MLflow; `print_leaderboards` prints them.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import sys
from pathlib import Path

from harness.evaluation.metrics import COUNTS
from harness.evaluation.protocol import common
from harness.evaluation.results import read_result
from harness.layout import eval_file, leaderboard_file, leaderboard_files, write_atomic
from harness.reporting.tables import provenance
from harness.reporting.verdicts import check_claim, check_reported, one_line

SHOWN = ("pass@1", "maj@{n}", "pass@{n}")


def aggregate(values: list[float]) -> dict:
    """Mean and sample standard deviation over seeds (std 0 for a single seed).

    >>> aggregate([0.5, 0.7])["mean"], round(aggregate([0.5, 0.7])["std"], 4)
    (0.6, 0.1414)
    """
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values), "values": values}  # fmt: skip


def with_average(metrics: dict[str, dict]) -> dict[str, dict]:
    """`metrics` plus an `average` task: the plain mean over the suite's top-level tasks (a group counts
    once, its subtasks not again) of every metric they all have. Papers report such averages.

    >>> with_average({"a": {"pass@1": 0.2, "x": 1}, "b": {"pass@1": 0.4}})["average"]
    {'pass@1': 0.30000000000000004, 'tasks': ['a', 'b']}
    >>> list(with_average({"a": {"pass@1": 0.2}}))
    ['a']
    """
    inside = {t for m in metrics.values() for t in m.get("subtasks", [])}
    top = [t for t, m in metrics.items() if t not in inside and "pass@1" in m]
    if len(top) < 2:
        return metrics
    keys = [k for k, v in metrics[top[0]].items()
            if isinstance(v, (int, float)) and k not in COUNTS and all(k in metrics[t] for t in top)]  # fmt: skip
    average = {k: statistics.fmean(metrics[t][k] for t in top) for k in keys}
    return metrics | {"average": average | {"tasks": top}}


def leaderboard_rows(plan, paper: str) -> list[dict]:
    rp = plan.papers[paper]
    rows = []
    for variant in rp.variants:
        results = [read_result(eval_file(plan.run(paper, variant, s))) for s in rp.seeds]
        results = [r | {"metrics": with_average(r["metrics"])} for r in results]
        for task in results[0]["metrics"]:
            keys = [k for k, v in results[0]["metrics"][task].items() if isinstance(v, (int, float))
                    and all(k in r["metrics"][task] for r in results)]  # length/wrong: only where a seed had one  # fmt: skip
            protocol, departures = common([r["protocol"] for r in results])
            rows.append({
                "variant": variant, "task": task, "model": rp.variants[variant].model, "seeds": list(rp.seeds),
                "metrics": {k: aggregate([r["metrics"][task][k] for r in results]) for k in keys},
                "protocol": protocol,
                "protocol_departures": [f"seed {rp.seeds[i]}: {d}" for i, ds in departures.items() for d in ds],
            })  # fmt: skip
    rows.sort(key=lambda r: (r["task"], -r["metrics"].get("pass@1", {"mean": 0.0})["mean"]))
    for task in {r["task"] for r in rows}:
        for rank, r in enumerate((r for r in rows if r["task"] == task), 1):
            r["rank"] = rank
    return rows


def summarize_paper(plan, paper: str) -> dict:
    from harness.reporting.tracking import log_summary

    rp = plan.papers[paper]
    rows = leaderboard_rows(plan, paper)
    tasks = [r["task"] for r in rows]
    task = "average" if "average" in tasks else tasks[0]  # claims are about the suite as a whole
    claims = [check_claim(c, rows, task) for c in rp.claims if c.scale == plan.scale]
    reported = [check_reported(r, rows if r.scale == plan.scale else []) for r in rp.reported]
    board = {"paper": paper, "title": rp.meta.title, "scale": plan.scale, "rows": rows, "claims": claims,
             "reported": reported, "summary": one_line(claims, reported),
             "deviations": [dataclasses.asdict(d) for d in rp.deviations], "made": provenance()}  # fmt: skip
    out = Path(leaderboard_file(paper, plan.scale))
    write_atomic(out, json.dumps(board, indent=1))
    md, text = out.with_suffix(".md"), format_board(board)
    write_atomic(md, text)
    log_summary(paper, plan.scale, board, [out, md], text)
    print(text)
    return board


def _cell(m: dict | None) -> str:
    return "-" if m is None else f"{m['mean']:.3f} ± {m['std']:.3f}"


def format_board(board: dict) -> str:
    lines = [
        f"## {board['paper']} [{board['scale']}]: {board['title']}",
        "",
        f"Verdicts: {board.get('summary', '-')}",
        "",
    ]
    for task in dict.fromkeys(r["task"] for r in board["rows"]):
        rows = [r for r in board["rows"] if r["task"] == task]
        proto = rows[0]["protocol"]
        n = proto["n_samples"]
        cols = [c.format(n=n) for c in SHOWN] if n > 1 else ["pass@1"]  # one sample: maj@1 = pass@1
        cols += [k for k in rows[0]["metrics"] if k.startswith("judge/")]  # the suite's judges (user groups)
        questions = rows[0]["metrics"].get("questions", {}).get("mean")
        lines += [f"{task}: mean ± std over seeds; {n} samples/question, temperature {proto['temperature']}"
                  + (f"; {questions:.0f} questions, pass@1 ± its standard error over them (bootstrap)" if questions else ""),
                  ""]  # fmt: skip
        errors = "stderr/pass@1" in rows[0]["metrics"]
        head = cols + (["± questions"] if errors else [])
        lines += ["| rank | variant | model | " + " | ".join(head) + " | seeds |", "|---" * (len(head) + 4) + "|"]
        for r in rows:
            cells = " | ".join(_cell(r["metrics"].get(c)) for c in cols)
            if errors:
                cells += f" | {r['metrics']['stderr/pass@1']['mean']:.3f}"
            lines.append(f"| {r['rank']} | {r['variant']} | {r['model']} | {cells} | {len(r['seeds'])} |")
        lines += [
            f"- protocol differs between seeds of {r['variant']}: {d}"
            for r in rows
            for d in r.get("protocol_departures", [])
        ]
        lines.append("")
    if board["claims"]:
        lines.append("Claims:")
        for c in board["claims"]:
            vals = ""
            if c["verdict"] != "not run":
                vals = (f" ({c['metric']}: {c['lhs']} {c['lhs_value']:.3f} vs {c['rhs']} {c['rhs_value']:.3f},"
                        f" noise margin {c.get('margin', 0.0):.3f})")  # fmt: skip
            why = f" (protocols differ: {c['why']})" if c.get("why") else ""
            flags = "".join(f" [flag: {f}]" for f in c.get("flags", []))
            lines.append(f"- [{c['verdict']}] {c['statement']}{vals}{why}{flags}")
        lines.append("")
    if board["reported"]:
        lines.append("Reported by the paper:")
        for r in board["reported"]:
            got = (
                ""
                if r.get("reproduced") is None
                else f"; ours {r['reproduced']:.3f} ± {r['ci']:.3f}, delta {r['delta']:+.3f}"
                + (f", tolerance {r['tolerance']:.3f} ({r['tolerance_from']})" if r.get("tolerance_from") else "")
            )
            why = f" (protocols differ: {r['why']})" if r.get("why") else ""
            why += "".join(f" [flag: {f}]" for f in r.get("flags", []))
            what = f"{r['variant']} over {r['over']}" if r.get("over") else r["variant"]
            value = f"{r['value']:+}" if r.get("over") else f"{r['value']}"
            lines.append(f"- [{r.get('verdict', 'not run')}] {what} on {r['benchmark']} {r['metric']} = {value}"
                         f" ({r['model']}, {r.get('scale', 'paper')} scale; {r['source']}){got}{why}")  # fmt: skip
        lines.append("")
    if board.get("deviations"):
        lines.append("Where this bundle departs from the paper (the verdicts above stand with these):")
        lines += [f"- {d['field']}: paper {d['paper']}, ours {d['ours']} ({d['why']})" for d in board["deviations"]]
        lines.append("")
    return "\n".join(lines)


def print_leaderboards(papers: list[str], scale: str | None, results: Path) -> int:
    boards = [json.loads(f.read_text()) for f in leaderboard_files(results)]
    boards = [b for b in boards if (not papers or b["paper"] in papers) and (scale is None or b["scale"] == scale)]
    if not boards:
        print(f"no leaderboards under {results}/runs: run `snakemake --cores 2` first", file=sys.stderr)
        return 1
    print("\n".join(format_board(b) for b in boards))
    return 0
