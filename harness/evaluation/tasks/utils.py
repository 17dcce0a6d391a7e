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
