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


def test_readme_constraints_table_is_the_generated_one():
    from harness.config.constraints import BEGIN, END, table

    readme = (ROOT / "README.md").read_text()
    shown = readme[readme.index(BEGIN) + len(BEGIN) : readme.index(END)].strip()
    assert shown == table(), (
        "README's constraints table is stale: python -m harness.config.constraints --write README.md"
    )
    assert "| `scales.<name>.seeds` | non-empty, distinct, each ≥ 0 |" in shown


def test_bundle_readme_deviation_tables_are_the_generated_ones():
    from harness.config.constraints import DEVIATIONS_BEGIN, DEVIATIONS_END, deviations_table

    checked = 0
    for readme in sorted((ROOT / "papers").glob("*/README.md")):
        text = readme.read_text()
        if DEVIATIONS_BEGIN not in text:
            continue
        shown = text[text.index(DEVIATIONS_BEGIN) + len(DEVIATIONS_BEGIN) : text.index(DEVIATIONS_END)].strip()
        assert shown == deviations_table(readme.parent / "paper.yaml"), (
            f"{readme}: stale deviations table: python -m harness.config.constraints --write README.md"
        )
        checked += 1
    assert checked >= 1  # one-shot-rlvr's at least
