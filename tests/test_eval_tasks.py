"""Every eval suite's task names resolve in the installed lm-eval (stock tasks or the project's own)."""

from __future__ import annotations

from harness.config import CONFIGS, load_component
from harness.evaluate import TASKS_DIR, own_tasks


def test_suite_task_names_exist_in_lm_eval():
    from lm_eval.tasks import TaskManager

    known = set(TaskManager(include_path=str(TASKS_DIR)).all_tasks)
    assert own_tasks() <= known
    for f in sorted((CONFIGS / "eval").glob("*.yaml")):
        suite = load_component("eval", f.stem, f, "tasks")
        missing = set(suite.tasks) - known
        assert not missing, f"{f.name}: unknown lm-eval tasks {sorted(missing)}"
