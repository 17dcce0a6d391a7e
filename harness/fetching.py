"""`harness fetch`: download the pinned hub items of a scale into the hub cache, on a machine that reaches the hub
(the head node), and write the markers that let the jobs reading them start; a dataset whose rows do not read as
its stage reads them gets no marker."""

from __future__ import annotations

import sys
from pathlib import Path

from harness.config.load import load_paper


def add_fetch_command(sub) -> None:
    """Register `harness fetch` on the `harness` command's subparsers."""
    p = sub.add_parser("fetch", help="download the hub items a scale uses into the hub cache (head node)")
    p.add_argument("papers", nargs="*", help="default: every paper defining the scale")
    p.add_argument("--scale", default="paper")
    p.add_argument("--pin", action="store_true", help="first write the hub's current commit of unpinned items")
    p.add_argument("--marker", default=None, help="fetch what one results/hub/ marker stands for (Snakemake)")
    p.set_defaults(fn=cmd_fetch)


def cmd_fetch(args) -> int:
    """Download the pinned hub items of the selected papers (or of one Snakemake marker) into the hub cache."""
    from harness import hub, offline
    from harness.config.load import load_cluster
    from harness.config.selection import select_papers
    from harness.pinning import pin

    root = offline.cache_root(load_cluster(args.cluster))
    try:
        if args.marker:
            fetched = hub.fetch(hub.marker_items(args.marker), root)
            if not _rows_readable(fetched, root):
                return 2
            hub.write_marker(args.marker, fetched)
            return 0
        papers = select_papers(args.papers or "all", args.papers_dir, args.scale)
        items = hub.items_of(papers, args.scale, args.papers_dir)
        if args.pin:
            pin(items)
            items = hub.items_of(papers, args.scale, args.papers_dir)
        print(f"{len(items)} hub items of {len(papers)} papers at scale {args.scale}; cache {root}", flush=True)
        fetched = hub.fetch(items, root, log=lambda line: print(line, flush=True))
        if not _rows_readable(fetched, root):
            return 2
        rps = [load_paper(p, args.scale, papers_dir=args.papers_dir) for p in papers]
        for marker, done in hub.markers_of(items, rps).items():
            hub.write_marker(marker, {i: fetched[i] for i in done})
    except hub.FetchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _rows_readable(items, root: Path) -> bool:
    """Every fetched dataset among `items` reads as a stage reads it (its fields, its shipped instruction), and
    every corpus is indexed (harness/corpora.py: its text columns read in every row); each problem printed with its
    config file. The caller then writes no marker, so no job that reads it starts."""
    from harness import corpora, offline
    from harness.config import read
    from harness.stages.data import check_fetched

    ok = True
    for item in items:
        if item.file.parent.name != "datasets":
            continue
        cfg = read.load_component("datasets", item.file.stem, item.file, "fetch")
        try:
            if cfg.text_fields is not None:
                corpora.build(cfg, root, log=lambda line: print(line, flush=True))
                continue
            n = check_fetched(cfg, Path(offline.local_dataset(cfg, root)))
            print(f"{item.file}: {n} rows read", flush=True)
        except (ValueError, KeyError) as e:
            print(f"error: {item.file}: {e.args[0] if isinstance(e, KeyError) and e.args else e}", file=sys.stderr)
            ok = False
    return ok
