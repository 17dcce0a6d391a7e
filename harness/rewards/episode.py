"""The reward of a multi-turn episode as its environment scored it (harness/environments/): the environment's
final reward plus its per-turn rewards, which the multiturn_grpo stage's rollout hands over in the `env_reward`
column. Other rewards may be summed with it (they read the episode's text: the policy's turns and the
environment's answers)."""

from __future__ import annotations

from harness.rewards import RewardFn, register_reward


@register_reward("episode_reward", needs_labels=False)
def episode_reward() -> RewardFn:
    """The `env_reward` column (only multiturn_grpo rollouts write it).

    >>> episode_reward()(["<1+2>=3;3", "4"], env_reward=[1.0, -0.5])
    [1.0, -0.5]
    """

    def reward(completions: list[str], env_reward: list[float] | None = None, **_) -> list[float]:
        if env_reward is None:
            raise ValueError("episode_reward reads the episode's environment reward: use it in a multiturn_grpo stage")
        return [float(r) for r in env_reward]

    return reward
