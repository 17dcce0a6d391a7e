"""Which seed papers have a bundle, per method family: the README's coverage table, generated from
papers/taxonomy.yaml (every taxonomy id by family, and the in-scope families' exclusions) and the bundles'
`paper.taxonomy_ids`. A paper counts as covered when some bundle names it.

    python -m harness.reporting.coverage --write README.md
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from harness.config.load import list_papers, load_paper_config
from harness.layout import PAPERS

BEGIN = "<!-- coverage: begin (generated from papers/ by harness/reporting/coverage.py) -->"
END = "<!-- coverage: end -->"


def bundles_by_id(papers_dir: Path = PAPERS) -> dict[int, list[str]]:
    """Taxonomy id -> the bundles naming it."""
    out: dict[int, list[str]] = {}
    for slug in list_papers(papers_dir):
        for i in load_paper_config(Path(papers_dir) / slug / "paper.yaml").paper.taxonomy_ids:
            out.setdefault(int(i), []).append(slug)
    return out


def table(papers_dir: Path = PAPERS) -> str:
    """The coverage table in Markdown: per family its papers, those in scope, the bundles naming them, the
    covered share of the in-scope ones; families outside text-LLM post-training last, marked out."""
    taxonomy = yaml.safe_load((Path(papers_dir) / "taxonomy.yaml").read_text())
    excluded = {int(i) for i in taxonomy.get("excluded") or {}}
    named = bundles_by_id(papers_dir)
    lines = [
        "| fam | family | papers | in scope | bundles (slug: ids) | covered | share |",
        "|---|---|---|---|---|---|---|",
    ]
    totals = [0, 0, 0]
    for letter, family in taxonomy["families"].items():
        ids = [int(i) for i in family["papers"]]
        if not family.get("in_scope", True):
            lines.append(f"| {letter} | {family['name']} | {len(ids)} | 0 | - | - | out |")
            totals[0] += len(ids)
            continue
        scope = [i for i in ids if i not in excluded]
        covered = [i for i in scope if i in named]
        slugs = sorted({s for i in covered for s in named[i]})
        shown = ", ".join(f"{s}: " + " ".join(f"#{i}" for i in covered if s in named[i]) for s in slugs) or "-"
        share = f"{100 * len(covered) / len(scope):.0f}%" if scope else "-"
        lines.append(
            f"| {letter} | {family['name']} | {len(ids)} | {len(scope)} | {shown} | {len(covered)} | {share} |"
        )
        totals[0] += len(ids)
        totals[1] += len(scope)
        totals[2] += len(covered)
    share = f"{100 * totals[2] / totals[1]:.0f}%" if totals[1] else "-"
    lines.append(f"| | **total** | **{totals[0]}** | **{totals[1]}** | **{len(list_papers(papers_dir))} bundles** | "
                 f"**{totals[2]}** | **{share}** |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    from harness.config.constraints import write

    if sys.argv[1:2] == ["--write"]:
        print("updated" if write(Path(sys.argv[2]), table, BEGIN, END) else "up to date")
    else:
        print(table())
