"""The `harness` subcommands that read results: leaderboard, report, tables, bands, compare and ui.

`add_commands(sub)` registers them on the `harness` parser (harness/cli.py). Their imports stay inside the
functions: every job of the DAG starts through the same parser and should not pay for them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def add_commands(sub) -> None:
    """The subcommands of this module on `sub`, the `harness` parser's subparsers."""
    p = sub.add_parser("leaderboard", help="ranked runs per paper and benchmark")
    p.add_argument("papers", nargs="*")
    p.add_argument("--scale", default=None)
    p.add_argument("--results", default="results")
    p.set_defaults(fn=cmd_leaderboard)

    p = sub.add_parser("report", help="HTML pages per paper (verdicts, leaderboard, curves) and an index")
    p.add_argument("papers", nargs="*")
    p.add_argument("--scale", default=None)
    p.add_argument("--results", default="results")
    p.add_argument("--index-only", action="store_true", help="rewrite only the index page")
    p.set_defaults(fn=cmd_report)

    p = sub.add_parser("tables", help="Markdown result tables from results/ (claims' verdicts, --board or --curve)")
    p.add_argument("papers", help="bundles as for Snakemake's papers=: a name, a comma list, @<set> or all")
    p.add_argument("--scale", default="toy")
    p.add_argument("--results", default="results")
    p.add_argument("--board", action="store_true", help="each bundle's leaderboard instead of the claims")
    p.add_argument("--curve", action="store_true", help="each bundle's pass@k at k = 1, 2, 4, ... per variant")
    p.add_argument(
        "--columns",
        type=lambda t: [c for c in t.split(",") if c],
        default=None,
        help="with --board: these metrics instead of pass@1, maj@n, pass@n (e.g. pass@1,judge/min)",
    )
    p.add_argument("--write", metavar="README", help="replace the README's block instead of printing")
    p.add_argument("--block", help="the block's name (default: the papers argument)")
    p.set_defaults(fn=cmd_tables)

    p = sub.add_parser("bands", help="check a bundle's leaderboard against its metric bands (papers/P/bands.yaml)")
    p.add_argument("papers", help="bundles as for Snakemake's papers=: a name, a comma list, @<set> or all")
    p.add_argument("--scale", default="toy")
    p.add_argument("--results", default="results")
    p.add_argument("--write", action="store_true", help="write the bands from the leaderboard instead of checking")
    p.add_argument("--min-width", type=float, default=0.03, help="with --write: the least widening of a band")
    p.set_defaults(fn=cmd_bands)

    p = sub.add_parser("ui", help="browse the leaderboards: the MLflow UI over results/ (or MLFLOW_TRACKING_URI)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p.set_defaults(fn=cmd_ui)

    p = sub.add_parser("compare", help="two evaluation results side by side, and whether their protocols differ")
    p.add_argument("a", help="an eval directory (results/runs/.../eval) or its metrics.json")
    p.add_argument("b")
    p.set_defaults(fn=cmd_compare)


def cmd_leaderboard(args) -> int:
    from harness.reporting.leaderboard import print_leaderboards

    return print_leaderboards(args.papers, args.scale, Path(args.results))


def cmd_report(args) -> int:
    from harness.reporting.html import build

    pages = build(Path(args.results), args.papers, args.scale, with_pages=not args.index_only)
    if len(pages) == 1 and not args.index_only:
        print(f"no leaderboards under {args.results}/runs: run `snakemake --cores 2` first", file=sys.stderr)
        return 1
    for page in pages:
        print(f"wrote {page}")
    return 0


def cmd_tables(args) -> int:
    """Markdown result tables from results/ (harness/reporting/tables.py), printed or written into a README block."""
    from harness.config.selection import select_papers
    from harness.reporting import tables

    try:
        found = tables.boards(select_papers(args.papers, args.papers_dir, args.scale), args.scale, Path(args.results))
        text = tables.render(found, board=args.board, curve=args.curve, columns=args.columns)
        if args.write:
            changed = tables.write_block(Path(args.write), args.block or args.papers.lstrip("@"), text)
            print(
                f"{args.write}: block {args.block or args.papers.lstrip('@')} {'updated' if changed else 'up to date'}"
            )
        else:
            print(text)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def cmd_bands(args) -> int:
    """Check a bundle's leaderboard against its metric bands (harness/reporting/bands.py), or --write them."""
    from harness.config.selection import select_papers
    from harness.reporting import bands, tables

    try:
        papers = select_papers(args.papers, args.papers_dir, args.scale)
        outside = 0
        for paper, board in zip(papers, tables.boards(papers, args.scale, Path(args.results)), strict=True):
            if args.write:
                print(f"wrote {bands.write(paper, args.scale, board, args.papers_dir, args.min_width)}")
                continue
            lines, out = bands.check(paper, args.scale, board, args.papers_dir, args.variants)
            print("\n".join(lines))
            outside += out
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if outside:
        print(f"{outside} number(s) outside their bands: the toy world or a method has moved (see OUT above)",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


def cmd_ui(args) -> int:
    from harness.reporting.tracking import leaderboard_links, public_uri, tracking_uri, ui_command

    url = f"http://{args.host}:{args.port}"
    print(f"MLflow UI over {public_uri(tracking_uri())} at {url} (Ctrl-C stops it). Leaderboards:")
    for link in leaderboard_links(url):
        print(f"  {link}")
    print("  (show metric columns with 'Columns'; click a column to sort)", flush=True)
    # exec: signals reach the server itself; without job execution SIGTERM leaves no workers behind
    cmd = ui_command(args.host, args.port)
    os.execvpe(cmd[0], cmd, dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"))


def cmd_compare(args) -> int:
    """Two evaluation results side by side, saying first whether their protocols differ."""
    from harness.evaluation.protocol import differences
    from harness.evaluation.results import read_result
    from harness.layout import METRICS_FILE

    results = []
    for path in (args.a, args.b):
        file = Path(path) / METRICS_FILE if Path(path).is_dir() else Path(path)
        if not file.is_file():
            print(f"error: {file} not found (give an eval directory or its {METRICS_FILE})", file=sys.stderr)
            return 2
        results.append(read_result(file))
    a, b = results
    diff = differences(a["protocol"], b["protocol"])
    print("protocols differ, the numbers are not comparable:" if diff else "same protocol (seeds aside)")
    for d in diff:
        print(f"  {d}")
    for task in [t for t in a["metrics"] if t in b["metrics"]]:
        ma, mb = a["metrics"][task], b["metrics"][task]
        shown = [k for k in ma if k in mb and isinstance(ma[k], (int, float)) and isinstance(mb[k], (int, float))]
        shown = [k for k in shown if not k.startswith("pass@") or _power_of_two(int(k[5:])) or k == "pass@1"]
        print(f"{task}:{'':>12}A       B   B - A")
        for k in shown:
            print(f"  {k:>16}  {ma[k]:6.3f}  {mb[k]:6.3f}  {mb[k] - ma[k]:+.3f}")
    return 1 if diff else 0


def _power_of_two(k: int) -> bool:
    return k & (k - 1) == 0
