"""What `harness validate` checks of a bundle: it loads and resolves at each scale it defines, each GPU stage
fits the GPUs of the cluster it would run on (harness/memory.py), and its paper scale's settings are sourced."""

from __future__ import annotations

from pathlib import Path

from harness.config.errors import ConfigError
from harness.config.load import load_paper


def validate_paper(name: str, papers_dir: Path, scale: str | None, cluster, site: str,
                   skip_undefined: bool = False) -> list[str]:  # fmt: skip
    """What `harness validate` checks of one bundle at `scale` (None: each scale it defines): it loads and
    resolves, each GPU stage fits `cluster`'s GPUs, and its metric bands (bands.yaml) name its scales and variants.
    A bundle without `scale` is refused, or with `skip_undefined` (every bundle checked, none named) passed over
    with its reason, as the DAG passes it over. Raises ConfigError; returns the lines to print."""
    from harness.config.claims import unsourced
    from harness.config.load import check_has_scales, load_paper_config, paper_file
    from harness.memory import check_paper

    lines, file = [], paper_file(name, papers_dir)
    paper = load_paper_config(file)
    check_has_scales(paper, file)
    if scale and scale not in paper.scales:
        why = f"it defines {', '.join(paper.scales)}"
        if scale == "paper" and paper.paper.no_paper_scale:
            why += f"; paper.no_paper_scale: {paper.paper.no_paper_scale}"
        if skip_undefined:
            return [f"skip {name} [{scale}]: not defined ({why})"]
        raise ConfigError(file, "scales", f"scale {scale!r} not defined ({why})")
    for s in [scale] if scale else list(paper.scales):
        rp = load_paper(name, s, papers_dir=papers_dir)
        plans = [p for p in check_paper(rp, cluster.gpu_mem_gb, site, cluster.node_mem_gb) if p.on_gpu]
        lines.append(f"ok  {name} [{s}]: {len(rp.variants)} variants x {len(rp.seeds)} seeds")
        lines += [f"      memory {line}" for line in dict.fromkeys(p.line() for p in plans)]  # a round's stages: once
        lines += [f"      deviation {d.field}: paper {d.paper}, ours {d.ours} ({d.why})" for d in rp.deviations]
        if s == "paper" and (assumed := unsourced(paper, s)):
            lines.append(f"      unsourced ({len(assumed)}, neither a source nor a deviation): {', '.join(assumed)}")
    check_bands(name, papers_dir, list(paper.scales), scale)
    return lines


def check_bands(name: str, papers_dir: Path, defined: list[str], scale: str | None = None) -> None:
    """The bundle's bands.yaml (if any) bands only scales it defines and variants it runs at them (at `scale` only,
    when given); ConfigError naming the file and key otherwise."""
    from harness.reporting.bands import bands_file, read

    file = bands_file(name, papers_dir)
    for s, section in read(name, papers_dir).items():
        if s not in defined:
            raise ConfigError(file, s, f"not a scale of {name} (its scales: {', '.join(defined)})")
        if scale is not None and s != scale:
            continue
        variants = load_paper(name, s, papers_dir=papers_dir).variants
        for v in section["bands"]:
            if v not in variants:
                raise ConfigError(file, f"{s}.bands.{v}", f"not a variant of {name} at scale {s} "
                                  f"(its variants: {', '.join(variants)})")  # fmt: skip


def validation_site(cluster_name: str, scale: str | None):
    """(cluster config, its file) whose GPUs a validation plans memory for: the GPU site for a CPU-only plan."""
    from harness.config.load import load_cluster

    site_name = "slurm" if cluster_name == "local" and scale == "paper" else cluster_name
    return load_cluster(site_name), f"configs/cluster/{site_name}.yaml"
