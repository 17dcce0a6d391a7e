"""An imperfect verifier, and its correction: RL with verifiable yet noisy rewards.

`noisy_verifier` wraps a per-sample verifier (exact_match at toy scale, math_verify at paper scale) in an asymmetric
noisy channel: a wrong completion is passed with probability `false_positive` (rho0), a right one failed with
probability `false_negative` (rho1). The flip of a completion is drawn from a hash of (seed, completion, answer), so a
verifier errs consistently on the same text, as a real one does. With `correct: backward` the reward is the unbiased
estimate of the clean one,

    r_hat = (r_noisy - rho0) / (1 - rho0 - rho1),

whose expectation over the channel is the clean reward: E[r_noisy] = rho0 + (1 - rho0 - rho1) * r_clean. Being affine,
the correction is cancelled by group mean/std advantages; it matters with advantages that keep the reward's scale or
offset (`reward`, REINFORCE without a baseline; `group_mean`).
"""

from __future__ import annotations

import hashlib

from harness.rewards import REWARDS, register_reward

CORRECTIONS = ("none", "backward")


def _check(false_positive: float = 0.0, false_negative: float = 0.0, correct: str = "none",
           verifier: str = "exact_match", seed: int = 0) -> None:  # fmt: skip
    for name, rate in (("false_positive", false_positive), ("false_negative", false_negative)):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"{name}: a rate in [0, 1), got {rate}")
    if false_positive + false_negative >= 1.0:
        raise ValueError(f"false_positive + false_negative must stay below 1 (got {false_positive + false_negative}):"
                         " at 1 the verdict says nothing about the answer")  # fmt: skip
    if correct not in CORRECTIONS:
        raise ValueError(f"correct: {correct!r} is not one of {list(CORRECTIONS)}")
    if verifier not in REWARDS:
        raise ValueError(f"verifier: {REWARDS.unknown_message(verifier)}")
    f = REWARDS.get(verifier)
    if not (f.per_sample and f.needs_labels):
        raise ValueError(f"verifier: {verifier!r} must be a per-sample reward that reads the gold answer")


def flipped(seed: int, completion: str, answer, rate: float) -> bool:
    """Whether the channel flips this completion's verdict: a uniform draw from the hash, below `rate`.

    >>> flipped(0, "46", "46", 0.0), flipped(0, "46", "46", 0.999999)
    (False, True)
    """
    digest = hashlib.sha256(f"{seed}\0{completion}\0{answer}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


@register_reward("noisy_verifier", needs_labels=True, validate=_check)
def noisy_verifier(false_positive: float = 0.0, false_negative: float = 0.0, correct: str = "none",
                   verifier: str = "exact_match", seed: int = 0):  # fmt: skip
    """The verifier's verdict through a noisy channel, optionally corrected (module docstring).

    >>> fn = noisy_verifier(false_positive=0.2, false_negative=0.1, correct="backward")
    >>> sorted({round(x, 4) for x in fn([str(n) for n in range(40, 60)], answer=["46"] * 20)})  # (1 - 0.2) / 0.7 ...
    [-0.2857, 1.1429]
    """
    _check(false_positive, false_negative, correct, verifier, seed)
    inner = REWARDS.get(verifier).build()
    scale = 1.0 - false_positive - false_negative

    def reward(completions: list, answer: list, **columns) -> list[float | None]:
        clean = inner(completions, answer=answer, **columns)
        out: list[float | None] = []
        for c, a, r in zip(completions, answer, clean, strict=True):
            if r is None:
                out.append(None)
                continue
            right = r >= 0.5
            flip = flipped(seed, str(c), a, false_negative if right else false_positive)
            noisy = float(right != flip)
            out.append((noisy - false_positive) / scale if correct == "backward" else noisy)
        return out

    return reward
