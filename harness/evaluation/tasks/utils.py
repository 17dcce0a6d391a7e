"""lm-eval hooks for the project's own tasks: local data loading and grading with harness.grader."""

from __future__ import annotations

from pathlib import Path

from harness.grader import repeat_scores


def load_toy_split(data_dir: str | None = None, **_) -> dict:
    """The CPU world's held-out split as a DatasetDict, from `data_dir` given in lm-eval metadata."""
    import datasets

    if data_dir is None:
        raise ValueError("toy tasks need metadata data_dir=<results/world/data/NAME>")
    path = Path(data_dir) / "test.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: build the CPU world first (snakemake)")
    return datasets.DatasetDict({"test": datasets.load_dataset("json", data_files=str(path), split="train")})


def process_results(doc: dict, results: list[list[str]]) -> dict[str, float]:
    """pass@1 as the mean correctness over all samples; maj@n as the majority answer's correctness.

    `results` holds one request per question, whose filtered responses are the n repeats.
    """
    (results,) = results
    return repeat_scores(results, doc["answer"])


def sql_target(doc: dict) -> str:
    """The toy SQL world's gold for the `sql_result` extractor: the reference query and the SQL creating its table."""
    import json

    return json.dumps({"query": doc["answer"], "database": doc["database"]})


def graded_scores(extractor: str, gold: str, responses: list[str]) -> dict[str, float]:
    """lm-eval's per-question metrics when an extractor decides correctness (code and SQL graders that run the
    answer in the sandbox): pass@1, the share of samples graded right; maj@n, whether the answer written most often
    (as text) is. Each distinct answer is graded once."""
    from harness.grader import EXTRACTORS, majority_answer

    grade = EXTRACTORS.get(extractor)
    gold = grade.gold(gold)
    answers = [grade(r) for r in responses]
    right = {a: grade.canonical(a, gold) == gold for a in set(answers) if a is not None}
    vote = majority_answer(answers)
    return {"pass@1": sum(right.get(a, False) for a in answers) / len(answers), "maj@n": float(right.get(vote, False))}


def process_sql(doc: dict, results: list[list[str]]) -> dict[str, float]:
    """The toy SQL world's metrics: queries graded by their rows (`sql_result`)."""
    return graded_scores("sql_result", sql_target(doc), results[0])


def process_programs(doc: dict, results: list[list[str]]) -> dict[str, float]:
    """The toy program world's metrics: expressions graded by their values (`python_expression`)."""
    return graded_scores("python_expression", doc["answer"], results[0])
