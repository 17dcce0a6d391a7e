"""The project's own lm-eval tasks load and grade hub-format rows, and every eval suite's task names resolve.

The hub datasets cannot be downloaded here, so each task is loaded on a 3-row fixture in the hub dataset's
column format (made-up problems), through a task YAML that includes the real one and swaps only the data.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.evaluation.evaluate import TASKS_DIR, own_tasks

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "tasks"

# task -> (split, first problem's text, its gold string, a right boxed answer, a wrong one)
HUB_TASKS = {
    "amc23": ("test", "How many marbles are in the bag?", "12", "\\boxed{12}", "\\boxed{13}"),
    "olympiadbench": (
        "test",
        "Compute the probability that it shows heads at least once.",
        "\\frac{3}{4}",
        "\\boxed{\\frac{3}{4}}",
        "\\boxed{\\frac{1}{4}}",
    ),
    "minerva_math_ocw": ("test", "Give this wavelength in meters", "5e-7", "\\boxed{5e-7}", "\\boxed{5e-6}"),
}


def load_on_fixture(task: str, tmp_path: Path):
    """The real task, renamed, reading its split from tests/fixtures/tasks/<task>.jsonl."""
    from lm_eval.tasks import TaskManager

    split = HUB_TASKS[task][0]
    name = f"{task}_fixture"
    override = {
        "include": str(TASKS_DIR / f"{task}.yaml"),
        "task": name,
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {split: str(FIXTURES / f"{task}.jsonl")}},
    }
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(override))
    tm = TaskManager(include_path=[str(TASKS_DIR), str(tmp_path)], include_defaults=False)
    return tm.load([name])["tasks"][name]


@pytest.mark.parametrize("task", sorted(HUB_TASKS))
def test_hub_task_loads_and_grades(task, tmp_path):
    _, problem, gold, right, wrong = HUB_TASKS[task]
    t = load_on_fixture(task, tmp_path)
    docs = list(t.eval_docs)
    assert len(docs) == 3
    doc = docs[0]
    assert problem in t.doc_to_text(doc)
    assert "\\boxed{}" in t.doc_to_text(doc)
    assert t.doc_to_target(doc) == gold
    reasoning = "Step by step, the answer is "
    assert t.process_results(doc, [[reasoning + right]]) == {"pass@1": 1.0, "maj@n": 1.0}
    assert t.process_results(doc, [[reasoning + wrong]]) == {"pass@1": 0.0, "maj@n": 0.0}
    # every repeat counts: 2 of 3 right, and the right answer is the majority
    mixed = t.process_results(doc, [[right, wrong, right]])
    assert mixed == {"pass@1": pytest.approx(2 / 3), "maj@n": 1.0}


def test_hub_tasks_keep_every_repeat():
    """The filter must not take only the first response, or pass@1 would be graded on one sample."""
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
    for task in HUB_TASKS:
        filters = tm.task_index[task].cfg["filter_list"]
        steps = [f["function"] for flt in filters for f in flt["filter"]]
        assert "take_first" not in steps, f"{task}: {steps}"


@pytest.fixture(scope="module")
def stock_tasks() -> set[str]:
    """Names of the tasks, groups and tags of the installed lm-eval (takes ~7 s to index)."""
    from lm_eval.tasks import TaskManager

    return set(TaskManager(include_defaults=True).all_tasks)


SUITES = sorted((ROOT / "configs" / "eval").glob("*.yaml"))


@pytest.mark.parametrize("suite", SUITES, ids=[f.name for f in SUITES])
def test_suite_task_names_resolve(suite, stock_tasks):
    cfg = yaml.safe_load(suite.read_text())
    tasks = cfg.get("tasks") or []
    known = own_tasks() | stock_tasks
    if cfg.get("environment"):  # an episode suite's task is the name its metrics are filed under: no lm-eval task
        assert not set(tasks) & known, f"configs/eval/{suite.name}: episode task names {tasks} shadow lm-eval tasks"
        return
    unknown = [t for t in tasks if t not in known]
    assert not unknown, (
        f"configs/eval/{suite.name}: tasks {unknown} are neither ours (harness/evaluation/tasks) nor stock lm-eval"
    )


def test_own_tasks_do_not_shadow_stock_ones(stock_tasks):
    assert set(HUB_TASKS) <= own_tasks()
    assert not own_tasks() & stock_tasks
