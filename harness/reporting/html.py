"""`harness report`: one HTML page per paper and scale, and an index, from results/ alone.

A page shows the verdicts (reported numbers, claims), the leaderboard, training curves (reward,
KL, entropy, completion length; mean over seeds per variant), pass@k curves, and for every run
the command that re-creates it and the commit that produced it. The plots are PNG files beside
the page, so Snakemake's own `--report` can attach them too.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from harness.evaluation.plots import power_of_two_ticks, pyplot
from harness.layout import REPORTS, STAGE_SUMMARY, Run, leaderboard_files, report_page, report_plots, tracked_file

CURVES = (("reward", "reward"), ("kl", "KL to reference"), ("entropy", "entropy"),
          ("completions/mean_length", "completion length (tokens)"))  # fmt: skip


def plot_passk(board: dict, out: Path) -> None:
    """pass@k against k (log scale), one line per variant and benchmark, mean over seeds."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for row in board["rows"]:
        ks = sorted(int(k.split("@")[1]) for k in row["metrics"] if k.startswith("pass@"))
        marks = [i for i, k in enumerate(ks) if k & (k - 1) == 0 or k == ks[-1]]  # powers of two and n
        ax.plot(ks, [row["metrics"][f"pass@{k}"]["mean"] for k in ks], marker="o", markevery=marks,
                label=f"{row['variant']} ({row['task']})")  # fmt: skip
    power_of_two_ticks(ax)
    ax.set(xlabel="k (samples)", ylabel="pass@k", title=f"{board['paper']} [{board['scale']}]")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def training_logs(run_dir: Path) -> list[dict]:
    """A run's logged training steps over all its stages, with steps counted across stages."""
    entries, offset = [], 0
    for f in sorted(run_dir.glob(f"stage*/{STAGE_SUMMARY}"), key=lambda p: int(p.parent.name[5:])):
        log = json.loads(f.read_text())
        entries += [e | {"step": e["step"] + offset} for e in log.get("log_history", []) if "step" in e and "loss" in e]
        offset += log.get("global_step", 0)  # a generate stage has no optimizer steps
    return entries


def plot_training(board: dict, results: Path, out: Path) -> None:
    """Training curves, mean over seeds per variant; variants without training are left out."""
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(9, 6))
    for variant in dict.fromkeys(r["variant"] for r in board["rows"]):
        seeds = next(r["seeds"] for r in board["rows"] if r["variant"] == variant)
        logs = [training_logs(results / "runs" / board["paper"] / board["scale"] / variant / f"seed{s}") for s in seeds]
        for ax, (key, label) in zip(axes.flat, CURVES, strict=True):
            by_step: dict[int, list[float]] = {}
            for log in logs:
                for e in log:
                    if key in e:
                        by_step.setdefault(e["step"], []).append(e[key])
            if by_step:
                steps = sorted(by_step)
                ax.plot(steps, [sum(by_step[s]) / len(by_step[s]) for s in steps], label=variant)
            ax.set(title=label, xlabel="step")
    for ax in axes.flat:
        if ax.lines:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "not logged (e.g. KL with beta = 0)", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def _table(header: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _num(x: float | None, sign: bool = False) -> str:
    return "-" if x is None else (f"{x:+.3f}" if sign else f"{x:.3f}")


def _run_rows(board: dict, results: Path) -> list[list[object]]:
    rows = []
    for variant in dict.fromkeys(r["variant"] for r in board["rows"]):
        for seed in next(r["seeds"] for r in board["rows"] if r["variant"] == variant):
            run = Run(board["paper"], board["scale"], variant, seed)
            tracked = results.parent / tracked_file(run)
            info = json.loads(tracked.read_text()) if tracked.is_file() else {}
            command = f"snakemake --cores 2 {tracked_file(run)} --config scale={run.scale} papers={run.paper}"
            rows.append([variant, seed, info.get("git_commit", "-")[:12], info.get("run_id", "-"), command])
    return rows


def write_page(board: dict, results: Path) -> Path:
    paper, scale = board["paper"], board["scale"]
    plots = {k: results.parent / v for k, v in report_plots(paper, scale).items()}
    plots["passk"].parent.mkdir(parents=True, exist_ok=True)
    plot_passk(board, plots["passk"])
    plot_training(board, results, plots["training"])
    reported = [[r.get("verdict", "not run") + "".join(f" ({f})" for f in r.get("flags", [])),
                 f"{r['variant']} over {r['over']}" if r.get("over") else r["variant"], r["benchmark"], r["metric"],
                 r["value"], _num(r.get("reproduced")), _num(r.get("ci")), _num(r.get("delta"), sign=True),
                 _num(r.get("tolerance")), r["model"], r["source"]] for r in board["reported"]]  # fmt: skip
    claims = [[c["verdict"], c["statement"], c["metric"], f"{c['lhs']} {c['op']} {c['rhs']}", _num(c.get("lhs_value")),
               _num(c.get("rhs_value")), _num(c.get("margin"))] for c in board["claims"]]  # fmt: skip
    deviations = [[d["field"], d["paper"], d["ours"], d["why"]] for d in board.get("deviations", [])]
    cols = [
        k for k in ("pass@1", "maj@8", "pass@8", "maj@16", "pass@16") if any(k in r["metrics"] for r in board["rows"])
    ]
    lead = [[r["rank"], r["task"], r["variant"], r["model"]]
            + [f"{r['metrics'][c]['mean']:.3f} ± {r['metrics'][c]['std']:.3f}" if c in r["metrics"] else "-" for c in cols]
            + [len(r["seeds"])] for r in board["rows"]]  # fmt: skip
    body = f"""<h1>{html.escape(paper)} [{html.escape(scale)}]</h1><p>{html.escape(board["title"])}</p>
<p><b>Verdicts:</b> {html.escape(board.get("summary", "-"))}</p>
<h2>Reported vs reproduced</h2>{_table(["verdict", "variant", "benchmark", "metric", "paper", "ours", "± (2 se)", "delta", "tolerance", "model", "source"], reported)}
<h2>Claims</h2>{_table(["verdict", "statement", "metric", "claim", "lhs", "rhs", "noise margin"], claims)}
<h2>Departures from the paper</h2>{_table(["setting", "paper", "ours", "why"], deviations)}
<h2>Leaderboard</h2><p>mean ± std over seeds</p>{_table(["rank", "benchmark", "variant", "model", *cols, "seeds"], lead)}
<h2>pass@k</h2><img src="{plots["passk"].relative_to(results.parent / REPORTS)}">
<h2>Training</h2><img src="{plots["training"].relative_to(results.parent / REPORTS)}">
<h2>Runs</h2>{_table(["variant", "seed", "commit", "MLflow run", "re-create with"], _run_rows(board, results))}"""
    out = results.parent / report_page(paper, scale)
    out.write_text(_html(f"{paper} [{scale}]", body))
    return out


def write_index(boards: list[dict], results: Path) -> Path:
    rows = "".join(f'<li><a href="{b["paper"]}-{b["scale"]}.html">{html.escape(b["paper"])} [{b["scale"]}]</a>: '
                   f'{html.escape(b.get("summary", "-"))}</li>' for b in boards)  # fmt: skip
    out = results.parent / REPORTS / "index.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_html("Reproductions", f"<h1>Reproductions</h1><ul>{rows}</ul>"))
    return out


def _html(title: str, body: str) -> str:
    style = "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}"
    return f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style></head><body>{body}</body></html>"


def build(
    results: Path, papers: list[str] | None = None, scale: str | None = None, with_pages: bool = True
) -> list[Path]:
    """Pages for every leaderboard under `results` (or the named papers / scale), and the index."""
    boards = [json.loads(f.read_text()) for f in leaderboard_files(results)]
    chosen = [b for b in boards if (not papers or b["paper"] in papers) and (scale is None or b["scale"] == scale)]
    pages = [write_page(b, results) for b in chosen] if with_pages else []
    return pages + [write_index(boards, results)]
