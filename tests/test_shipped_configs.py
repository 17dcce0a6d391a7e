"""The shipped configs: every bundle in papers/ loads at each of its scales, every paper-scale setting has a source
or a deviation, and every component and cluster config under configs/ loads. (How loading works, and what it
refuses: tests/test_config.py.)"""

from __future__ import annotations

import pytest

from harness.config.components import DatasetConfig, EvalConfig, ModelConfig
from harness.config.errors import ConfigError
from harness.config.load import list_papers, load_paper, load_paper_config, paper_file
from harness.config.read import load_component
from harness.layout import CONFIGS, PAPERS

SHIPPED = [(slug, scale) for slug in list_papers() for scale in load_paper_config(paper_file(slug)).scales]


def test_some_bundles_are_shipped():
    assert SHIPPED, f"no papers/*/paper.yaml under {PAPERS}"


@pytest.mark.parametrize(("slug", "scale"), SHIPPED, ids=[f"{s}-{c}" for s, c in SHIPPED])
def test_shipped_bundle_loads_at_every_scale(slug, scale):
    rp = load_paper(slug, scale)
    assert rp.slug == slug and rp.scale == scale and rp.seeds
    assert rp.variants, "a bundle with no variant at this scale runs nothing"
    for v in rp.variants.values():
        assert v.model in rp.models


PAPER_SCALES = [slug for slug, scale in SHIPPED if scale == "paper"]


@pytest.mark.parametrize("slug", PAPER_SCALES)
def test_every_paper_scale_setting_has_a_source_or_a_deviation(slug):
    from harness.config.claims import unsourced

    paper = load_paper_config(paper_file(slug))
    assert unsourced(paper, "paper") == [], "add a `sources:` entry (or `assumed: ...`) or a deviation for each"
    assert paper.sources, "a paper scale says where its settings come from"
    readme = paper_file(slug).parent / "README.md"
    assert readme.is_file() and "<!-- deviations: begin" in readme.read_text(), f"{readme}: no deviations table"


COMPONENTS = sorted((kind, p.stem) for kind in ("models", "datasets", "eval") for p in (CONFIGS / kind).glob("*.yaml"))
SCHEMAS = {"models": ModelConfig, "datasets": DatasetConfig, "eval": EvalConfig}


@pytest.mark.parametrize(("kind", "name"), COMPONENTS, ids=[f"{k}/{n}" for k, n in COMPONENTS])
def test_shipped_component_loads(kind, name):
    cfg = load_component(kind, name, CONFIGS / kind / f"{name}.yaml", "")
    assert isinstance(cfg, SCHEMAS[kind])
    assert (CONFIGS / kind / f"{name}.yaml").read_text().startswith("#"), "a config starts with what it is for"
    if kind == "models" and cfg.source == "toy":
        assert (CONFIGS / "datasets" / f"{cfg.dataset}.yaml").is_file()


def test_shipped_cluster_configs_load():
    from harness.config.load import load_cluster

    assert load_cluster("local").launcher == "local"
    assert load_cluster("slurm").launcher == "slurm"
    with pytest.raises(ConfigError, match="no cluster config 'nowhere'"):
        load_cluster("nowhere")
