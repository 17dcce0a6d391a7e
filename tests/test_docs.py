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


def test_readme_coverage_table_is_the_generated_one():
    from harness.reporting.coverage import BEGIN, END, table

    readme = (ROOT / "README.md").read_text()
    shown = readme[readme.index(BEGIN) + len(BEGIN) : readme.index(END)].strip()
    assert shown == table(), "README's coverage table is stale: python -m harness.reporting.coverage --write README.md"
    assert "| K | Multimodal VLM / video / audio | 27 | 0 | - | - | out |" in shown


def test_the_coverage_table_counts_what_bundles_name(tmp_path):
    from harness.reporting.coverage import table

    papers = tmp_path / "papers"
    (papers / "one").mkdir(parents=True)
    (papers / "taxonomy.yaml").write_text(
        "families:\n  A: {name: first, papers: [1, 2, 3, 4]}\n  K: {name: images, in_scope: false, papers: [5]}\n"
        "excluded: {4: a survey}\n"
    )
    (papers / "one" / "paper.yaml").write_text(
        "paper: {title: one, taxonomy_ids: [2, 3, 5]}\nvariants: {base: {description: b, stages: []}}\nscales: {toy: {}}\n"
    )
    assert table(papers).splitlines()[2:] == [
        "| A | first | 4 | 3 | one: #2 #3 | 2 | 67% |",  # 4 is excluded; 5 is in an out-of-scope family
        "| K | images | 1 | 0 | - | - | out |",
        "| | **total** | **5** | **3** | **1 bundles** | **2** | **67%** |",
    ]


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
