"""The paper-faithful verifiable reward for math: the final answer is right when it is the gold answer as a
mathematical object (math-verify: `\\frac{64}{5}` and `12.8` agree), not only as a string."""

from __future__ import annotations

from harness.grader import EXTRACTORS
from harness.rewards import RewardFn, register_reward


@register_reward("math_verify", needs_labels=True)
def math_verify() -> RewardFn:
    r"""1 if the completion's final answer (its last `\boxed{}` first) is equivalent to the gold `answer`, else 0.

    >>> math_verify()(["so $\\boxed{\\dfrac{64}{5}}$", "\\boxed{13}", "no answer"], answer=["12.8"] * 3)
    [1.0, 0.0, 0.0]
    """
    grader = EXTRACTORS.get("math_verify")

    def reward(completions: list[str], answer: list[str], **_) -> list[float]:
        return [float(grader.correct(c, str(a))) for c, a in zip(completions, answer, strict=True)]

    return reward
