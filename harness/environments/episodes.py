"""Multi-turn episodes: the policy's turns and an environment's answers, as one token sequence after the prompt
with a mask telling the policy's tokens (1) from the environment's (0).

A turn is sampled (every active episode in one batch: transformers' generate, or a `Sampler` such as the vLLM engine
of a GRPO trainer, harness.stages.multiturn) until EOS, one of the environment's stop strings, or `max_turn_tokens`;
the environment reads its text and answers (harness.environments.Turn). When a
stop string ends inside a token, the turn's text is cut just after it and re-tokenized, so the environment's answer
follows exactly what it read. The episode ends when the environment says so, after `max_turns` turns, or when the
sequence reaches `max_tokens`; its reward is the environment's final reward plus its per-turn rewards.

Used by the multiturn_grpo stage (as TRL's `rollout_func`, `env_mask` masking the environment's tokens out of the
loss), by the episode evaluation, and by the skill checks of toy bases pre-trained on a tool world (greedy).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import torch


@dataclass
class Episode:
    prompt_ids: list[int]
    ids: list[int] = field(default_factory=list)
    """Everything after the prompt: the policy's turns and the environment's answers."""
    mask: list[int] = field(default_factory=list)
    """Per token of `ids`: 1 written by the policy, 0 by the environment."""
    logprobs: list[float] | None = None
    """Per token of `ids`, when the sampler reports them: the sampling log-probability of a policy token (NaN where a
    turn cut inside a token was re-encoded), 0 for the environment's; None: not reported (transformers)."""
    turns: list[str] = field(default_factory=list)
    """The policy's turns as text."""
    turn_rewards: float = 0.0
    reward: float = 0.0
    """The environment's final reward plus the per-turn rewards."""
    stats: dict[str, float] = field(default_factory=dict)
    done: bool = False


class _StopAtText:
    """generate's stopping criterion, per row: the new text holds a stop string (EOS stops rows by itself)."""

    def __init__(self, tokenizer, start: int, stops: tuple[str, ...]) -> None:
        self.tokenizer, self.start, self.stops = tokenizer, start, stops

    def __call__(self, input_ids: torch.Tensor, scores, **_) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.start :], skip_special_tokens=True)
        return torch.tensor([any(s in t for s in self.stops) for t in texts], device=input_ids.device)


def cut_turn(ids: list[int], tokenizer, stops: tuple[str, ...]) -> tuple[list[int], str, bool]:
    """A sampled turn's tokens up to its end: (ids, text, ended by EOS). The turn ends at the first EOS (kept) or
    just after the first stop string (its tokens re-encoded when the stop ends inside a token); else all of it."""
    eos = tokenizer.eos_token_id
    if eos in ids:
        ids = ids[: ids.index(eos) + 1]
    text = tokenizer.decode(ids, skip_special_tokens=True)
    ends = [text.index(s) + len(s) for s in stops if s in text]
    if ends and min(ends) < len(text):
        text = text[: min(ends)]
        return tokenizer.encode(text, add_special_tokens=False), text, False
    if ends:
        ids = [i for i in ids if i != eos]  # the stop string came last: no EOS after it
        return ids, text, False
    return ids, text, bool(ids) and ids[-1] == eos


class Sampler:
    """Samples one turn for each context: `sample(contexts, stops, max_new)` -> per context (new token ids, their
    log-probabilities or None). A `lockstep` sampler is called on every turn up to the limit, with no contexts left
    too: it takes part in collectives across ranks (vLLM's), so every rank must call it as often."""

    lockstep = False

    def sample(self, contexts: list[list[int]], stops: tuple[str, ...], max_new: int):
        raise NotImplementedError


class Transformers(Sampler):
    """transformers' generate on `model`, left-padded into one batch (this process only)."""

    def __init__(self, model, tokenizer, temperature: float, top_p: float, greedy: bool) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.temperature, self.top_p, self.greedy = temperature, top_p, greedy

    def sample(self, contexts, stops, max_new):
        device = next(self.model.parameters()).device
        rows = _sample(self.model, self.tokenizer, contexts, stops, max_new, self.temperature, self.top_p,
                       self.greedy, device)  # fmt: skip
        return [(row, None) for row in rows]


@torch.no_grad()
def run_episodes(model, tokenizer, prompts: list[str], rows: list[dict], make_env: Callable, *, max_turns: int,
                 max_turn_tokens: int, max_tokens: int, temperature: float = 1.0, top_p: float = 1.0,
                 greedy: bool = False, progress: float | None = None, sampler: Sampler | None = None,
                 ) -> list[Episode]:  # fmt: skip
    """One episode per (prompt, row), all advanced together, turn by turn, sampled by `sampler` (None:
    transformers' generate on `model`). `progress`: the share of training done, handed to environments that follow
    it (`at_progress`); None (an evaluation): none is."""
    sampler = sampler or Transformers(model, tokenizer, temperature, top_p, greedy)
    envs = [make_env() for _ in rows]
    if progress is not None:
        for env in envs:
            if hasattr(env, "at_progress"):
                env.at_progress(progress)
    episodes = []
    for prompt, row, env in zip(prompts, rows, envs, strict=True):
        episode = Episode(prompt_ids=tokenizer.encode(prompt, add_special_tokens=False))
        opening = env.reset(row)
        if opening:
            _observe(episode, tokenizer, opening)
        episodes.append(episode)
    stops = tuple(dict.fromkeys(s for env in envs for s in env.stop))
    for _ in range(max_turns):
        active = [i for i, e in enumerate(episodes) if not e.done and len(e.ids) < max_tokens]
        if not active and not sampler.lockstep:
            break
        contexts = [episodes[i].prompt_ids + episodes[i].ids for i in active]
        sampled = sampler.sample(contexts, stops, max_turn_tokens)
        texts = []
        for i, (new, logprobs) in zip(active, sampled, strict=True):
            episode, env = episodes[i], envs[i]
            ids, text, _ = cut_turn(new, tokenizer, tuple(env.stop))
            if logprobs is not None:
                kept = logprobs[: len(ids)] if ids == new[: len(ids)] else [float("nan")] * len(ids)  # re-encoded
                episode.logprobs = (episode.logprobs or [0.0] * len(episode.ids)) + list(kept)
            episode.ids += ids
            episode.mask += [1] * len(ids)
            episode.turns.append(text)
            texts.append(text)
        for i, turn in zip(active, _steps([envs[i] for i in active], texts), strict=True):
            episode = episodes[i]
            episode.turn_rewards += turn.reward
            if turn.observation and not turn.done:
                _observe(episode, tokenizer, turn.observation)
            episode.done = turn.done
    for episode, env in zip(episodes, envs, strict=True):
        episode.ids, episode.mask = episode.ids[:max_tokens], episode.mask[:max_tokens]
        if episode.logprobs is not None:
            episode.logprobs = (episode.logprobs + [0.0] * len(episode.ids))[: len(episode.ids)]
        episode.reward = env.reward() + episode.turn_rewards
        episode.stats = dict(env.stats()) | {"turns": float(len(episode.turns)), "finished": float(episode.done)}
    return episodes


def _steps(envs: list, texts: list[str]) -> list:
    """Each environment's answer to its turn: at once in threads when the environments run programs (`slow_steps`:
    a sandbox per call waits on a process), else one after the other."""
    if len(envs) > 1 and getattr(envs[0], "slow_steps", False):
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(len(envs), os.cpu_count() or 1, 32)) as pool:
            return list(pool.map(lambda pair: pair[0].step(pair[1]), zip(envs, texts, strict=True)))
    return [env.step(text) for env, text in zip(envs, texts, strict=True)]


def _observe(episode: Episode, tokenizer, text: str) -> None:
    ids = tokenizer.encode(text, add_special_tokens=False)
    if episode.logprobs is not None:
        episode.logprobs += [0.0] * len(ids)
    episode.ids += ids
    episode.mask += [0] * len(ids)


def _sample(model, tokenizer, contexts, stops, max_new, temperature, top_p, greedy, device) -> list[list[int]]:
    """New tokens per context (left-padded into one batch), each row stopping at EOS or a stop string."""
    from transformers import StoppingCriteriaList

    width = max(map(len, contexts))
    pad = tokenizer.pad_token_id
    ids = torch.tensor([[pad] * (width - len(c)) + c for c in contexts], device=device)
    attention = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in contexts], device=device)
    sampling = {"do_sample": False} if greedy else {"do_sample": True, "temperature": temperature, "top_p": top_p,
                                                    "top_k": 0}  # fmt: skip
    out = model.generate(
        input_ids=ids,
        attention_mask=attention,
        max_new_tokens=max_new,
        pad_token_id=pad,
        eos_token_id=tokenizer.eos_token_id,
        stopping_criteria=StoppingCriteriaList([_StopAtText(tokenizer, width, stops)]) if stops else None,
        **sampling,
    )
    return [[t for t in row.tolist() if t != pad] for row in out[:, width:]]
