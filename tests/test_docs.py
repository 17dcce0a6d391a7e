"""The README's example bundle is a real one: it validates at every scale it defines."""

from __future__ import annotations

from harness.config.load import load_paper, load_paper_config
from tests.conftest import ROOT, write_bundle


def test_readme_example_bundle_validates(tmp_path):
    readme = (ROOT / "README.md").read_text()
    start = readme.index("# papers/my-paper/paper.yaml")
    bundle = write_bundle(tmp_path / "papers", "my-paper", readme[start : readme.index("```", start)])
    scales = list(load_paper_config(bundle).scales)
    assert scales == ["toy", "small-real", "paper"]
    for scale in scales:
        rp = load_paper("my-paper", scale, papers_dir=tmp_path / "papers")
        assert set(rp.variants) == {"base", "mine"}
        assert rp.variants["mine"].stages[0].rewards[0].name == "majority_vote"
