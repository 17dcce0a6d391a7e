"""lm-eval hooks for the hub code benchmarks (humaneval_sandboxed, mbpp_sandboxed): prompt, tests as the target,
grading by running the program and its tests in harness.sandbox (the `python_program` extractor), never in the
evaluating process. lm-eval's own humaneval/mbpp tasks execute model code in-process (`HF_ALLOW_CODE_EVAL`); these
replace them.

openai/openai_humaneval rows: task_id, prompt (signature + docstring), canonical_solution, test (defines
`check`), entry_point. google-research-datasets/mbpp (`full`) rows: task_id, text, code, test_list (asserts),
test_setup_code, challenge_test_list.
"""

from __future__ import annotations

import json

from harness.evaluation.tasks.utils import graded_scores

FENCE_ASK = "Write the complete function in one ```python code block."


def humaneval_text(doc: dict) -> str:
    """The function to complete, as a chat request.

    >>> humaneval_text({"prompt": "def f(x):\\n    '''Double.'''\\n"}).splitlines()[0]
    'Complete the following Python function.'
    """
    return f"Complete the following Python function.\n\n```python\n{doc['prompt']}```\n\n{FENCE_ASK}"


def humaneval_target(doc: dict) -> str:
    """The tests, with the prompt to put before a bare body: `check(<entry point>)` after HumanEval's `check`."""
    tests = f"{doc['test']}\n\ncheck({doc['entry_point']})\n"
    return json.dumps({"prefix": doc["prompt"], "tests": tests, "entry_point": doc["entry_point"]})


def mbpp_text(doc: dict) -> str:
    """MBPP's task statement and its tests, as the original paper's prompt shows them.

    >>> mbpp_text({"text": "Add two numbers.", "test_list": ["assert add(1, 2) == 3"]}).splitlines()[:3]
    ['Add two numbers.', 'Your code should pass these tests:', 'assert add(1, 2) == 3']
    """
    return f"{doc['text']}\nYour code should pass these tests:\n" + "\n".join(doc["test_list"]) + f"\n\n{FENCE_ASK}"


def mbpp_target(doc: dict) -> str:
    """The setup code and every assert (challenge tests are not part of MBPP's pass@1)."""
    tests = (doc.get("test_setup_code") or "") + "\n" + "\n".join(doc["test_list"]) + "\n"
    return json.dumps({"prefix": "", "tests": tests, "entry_point": None})


def process_humaneval(doc: dict, results: list[list[str]]) -> dict[str, float]:
    """pass@1: the share of samples whose program passes every test; maj@n: whether the program written most often
    (as text) does."""
    return graded_scores("python_program", humaneval_target(doc), results[0])


def process_mbpp(doc: dict, results: list[list[str]]) -> dict[str, float]:
    return graded_scores("python_program", mbpp_target(doc), results[0])
