"""What a Snakemake run covers, from its `--config`: the keys it takes (checked), the papers (`papers=`: a bundle, a
comma list, a named set of <papers_dir>/sets.yaml, or all) and, for a quick cut, only some variants (`variants=`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from harness.config.errors import ConfigError
from harness.config.load import list_papers, load_paper_config, paper_file
from harness.config.schema import ResolvedPaper
from harness.layout import PAPERS

SETS_FILE = "sets.yaml"


WORKFLOW_CONFIG = {
    "scale": "configs/scales/<scale>.yaml (default toy)",
    "papers": "a bundle, a comma list, @<set> of papers/sets.yaml, or all (default: the default set)",
    "seeds": "seeds run instead of each scale's, e.g. [0] or [0,1,2]",
    "variants": "only these variants of the selected papers, e.g. [base_weak,majority_vote_weak] (a quick cut)",
    "cluster": "configs/cluster/<name>.yaml (the slurm profile sets slurm)",
    "papers_dir": "where bundles live (default papers/)",
    "reuse": "false: compute every train/evaluate job even when an identical one finished (default true)",
}
"""The keys `snakemake --config` takes, and what each is."""


def workflow_config(config: dict) -> dict:
    """Snakemake's `config` checked: only WORKFLOW_CONFIG's keys (a misspelt one would be ignored silently),
    `seeds` as a list of integers (a number, a list, or "0,1").

    >>> workflow_config({"scale": "toy", "seeds": 0})["seeds"], workflow_config({"seeds": "0,2"})["seeds"]
    ([0], [0, 2])
    >>> workflow_config({"reuse": "false"})["reuse"], workflow_config({"reuse": True})["reuse"]
    (False, True)
    >>> workflow_config({"seed": 0})
    Traceback (most recent call last):
    harness.config.errors.ConfigError: <snakemake --config>: seed: unknown key; did you mean 'seeds'? (known: scale, papers, seeds, variants, cluster, papers_dir, reuse)
    """
    import difflib

    where = "<snakemake --config>"
    for key in config:
        if key not in WORKFLOW_CONFIG:
            close = difflib.get_close_matches(str(key), WORKFLOW_CONFIG, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(where, str(key), f"unknown key{hint} (known: {', '.join(WORKFLOW_CONFIG)})")
    out = dict(config)
    if "seeds" in out:
        seeds = out["seeds"]
        items = seeds if isinstance(seeds, list) else str(seeds).split(",")
        try:
            out["seeds"] = [int(s) for s in items]
        except (TypeError, ValueError):
            raise ConfigError(where, "seeds", f"expected integers, e.g. [0] or [0,1,2]; got {seeds!r}") from None
    if "variants" in out:
        chosen = out["variants"]
        out["variants"] = [str(v) for v in (chosen if isinstance(chosen, list) else str(chosen).split(",")) if v]
        if not out["variants"]:
            raise ConfigError(where, "variants", f"expected variant names, e.g. [base,gold_grpo]; got {chosen!r}")
    if "reuse" in out:
        flag = {"true": True, "false": False}.get(str(out["reuse"]).lower())
        if flag is None:
            raise ConfigError(where, "reuse", f"expected true or false; got {out['reuse']!r}")
        out["reuse"] = flag
    return out


def only_variants(papers: dict[str, ResolvedPaper], variants: list[str]) -> dict[str, ResolvedPaper]:
    """Each paper with only the listed variants it has; ConfigError when a name is no paper's variant, or a paper
    keeps none (`snakemake --config variants=[...]`)."""
    where = "<snakemake --config>"
    for name in variants:
        if not any(name in rp.variants for rp in papers.values()):
            known = sorted({v for rp in papers.values() for v in rp.variants})
            raise ConfigError(where, "variants", f"{name!r} is a variant of none of {', '.join(papers)} at this "
                              f"scale (known: {', '.join(known)})")  # fmt: skip
    out = {}
    for slug, rp in papers.items():
        kept = {v: x for v, x in rp.variants.items() if v in variants}
        if not kept:
            raise ConfigError(where, "variants", f"none of {', '.join(variants)} is a variant of {slug}")
        out[slug] = dataclasses.replace(rp, variants=kept)
    return out


def select_papers(
    value: str | list[str] | None, papers_dir: Path | str = PAPERS, scale: str | None = None
) -> list[str]:
    """The papers a run covers, from Snakemake's `papers` config value.

    None: the `default` set of <papers_dir>/sets.yaml (every paper when the file or set is absent);
    `all`: every paper (given a `scale`, every paper that defines it); `@name`: the named set;
    otherwise a list or comma-separated slugs.
    """
    papers_dir = Path(papers_dir)
    if isinstance(value, str):
        value = [p for p in value.split(",") if p]
    if not value:
        value = ["@default"] if "default" in _sets(papers_dir) else ["all"]
    names: list[str] = []
    for item in value:
        if item == "all":
            every = list_papers(papers_dir)
            if scale is not None:
                every = [p for p in every if scale in load_paper_config(paper_file(p, papers_dir)).scales]
                if not every:
                    raise ConfigError(papers_dir, "papers", f"papers=all: no paper defines scale {scale!r}")
            names += every
        elif item.startswith("@"):
            sets, key = _sets(papers_dir), item[1:]
            if key not in sets:
                raise ConfigError(papers_dir / SETS_FILE, key, f"no paper set {key!r} (known: {', '.join(sets)})")
            names += sets[key]
        else:
            names.append(item)
    return list(dict.fromkeys(names))


def _sets(papers_dir: Path) -> dict[str, list[str]]:
    file = papers_dir / SETS_FILE
    if not file.is_file():
        return {}
    data = yaml.safe_load(file.read_text()) or {}
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ConfigError(file, "", "expected a mapping of set names to lists of paper slugs")
    return {str(k): [str(p) for p in v] for k, v in data.items()}
