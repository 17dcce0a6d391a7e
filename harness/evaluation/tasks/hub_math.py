"""lm-eval hooks for the hub math benchmarks (amc23, olympiadbench, minerva_math_ocw): prompt, gold answer
and grading with harness.grader.

All three datasets hold the problem in `question`; the gold answer is `answer` (a float in math-ai/amc23, a
string in math-ai/minervamath) or `final_answer`, a list of `$`-wrapped strings (math-ai/olympiadbench).
"""

from __future__ import annotations

from harness.grader import repeat_scores

INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
"""The zero-shot instruction of the Qwen2.5-Math / DeepSeek-R1 evaluations, which these benchmarks come from."""


def doc_to_text(doc: dict) -> str:
    r"""The problem followed by the instruction to box the final answer.

    >>> doc_to_text({"question": "What is 2+3?"})
    'What is 2+3?\n\nPlease reason step by step, and put your final answer within \\boxed{}.'
    """
    return f"{doc['question'].strip()}\n\n{INSTRUCTION}"


def doc_to_target(doc: dict) -> str:
    """The gold answer as a string: the first of a list (OlympiadBench), without `$`; integral floats as integers.

    >>> doc_to_target({"answer": 27.0})
    '27'
    >>> doc_to_target({"answer": "6.2e-3"})
    '6.2e-3'
    >>> doc_to_target({"final_answer": ["$\\\\frac{1}{2}$"]})
    '\\\\frac{1}{2}'
    """
    gold = doc["final_answer"][0] if "final_answer" in doc else doc["answer"]
    if isinstance(gold, float) and gold.is_integer():
        gold = int(gold)
    return str(gold).strip().strip("$").strip()


def process_results(doc: dict, results: list[list[str]]) -> dict[str, float]:
    """pass@1 as the mean correctness over all samples; maj@n as the majority answer's correctness.

    `results` holds one request per question, whose filtered responses are the n repeats.
    """
    (results,) = results
    return repeat_scores(results, doc_to_target(doc))
