"""The multiturn_grpo stage kind: GRPO over multi-turn episodes with an environment (tools, search, a simulator).

Each rollout is an episode (harness.environments.episodes): the policy's turns and the environment's answers up to
`max_turns`, as one completion whose environment tokens carry no loss (TRL's `env_mask` -> the trainer's
`tool_mask`). Rewards score the whole episode: `episode_reward` is the environment's own (final plus per-turn),
and any other reward reads the episode's text. Group statistics, advantages, losses and aggregations are the grpo
kind's, unchanged (the same HarnessGRPOTrainer), over whole episodes. Turns are sampled by transformers in this
process (`generation_engine: hf`, the default) or by the trainer's vLLM engine (`vllm`, or `auto` on a GPU; colocated
or a server, as a grpo stage's): TRL syncs its weights before each rollout, each turn is one call with the turn's
token limit and the environment's stop strings, and the sampled tokens' log-probabilities go back for TRL's
importance-sampling correction. vLLM's calls are collective across ranks (a server answers all of them at once, a
tensor-parallel group shares them), so every rank makes the same number of calls with the same number of contexts:
the rank with fewer active episodes pads with a copy of one of them and drops the extra answers.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.config.errors import Invalid
from harness.config.typed import MAX_TOKENS
from harness.stages import grpo
from harness.stages.args import ours
from harness.stages.kind import POLICY, SPLIT, StageJob, StageKind


@dataclass
class MultiTurnArgs(grpo.GRPOArgs):
    """A GRPO stage's hyper-parameters, with `max_completion_length` bounding a whole episode's tokens (the
    policy's and the environment's), and the episode's own limits."""

    max_turns: int = ours(4, ge=1, le=64)
    """Policy turns per episode at most (a turn that calls no tool usually ends it first)."""
    max_turn_tokens: int = ours(64, ge=1, le=MAX_TOKENS)
    """Tokens one policy turn may sample before it is cut."""
    generation_engine: str = ours("hf")
    """How turns are sampled: `hf` (transformers in the trainer's process; the memory plan counts its KV cache),
    `vllm` (the trainer's vLLM engine, `vllm_mode` colocate or server) or `auto` (vLLM on a GPU)."""


def check_args(args: dict) -> None:
    grpo.check_args(args)
    if args["max_turn_tokens"] > args["max_completion_length"]:
        raise Invalid("max_turn_tokens", f"{args['max_turn_tokens']} exceeds the episode's max_completion_length "
                      f"{args['max_completion_length']}")  # fmt: skip


KIND = StageKind(
    "multiturn_grpo",
    MultiTurnArgs,
    reads=SPLIT,
    makes=POLICY,
    entry="harness.stages.multiturn:run",
    rewards="required",
    objective=True,
    environment=True,
    check_args=check_args,
    trl_config="trl:GRPOConfig",
    memory=grpo.memory,
)


def environment_factory(job: StageJob):
    """The stage's environment factory, built with its arguments (and the dataset's corpus or its index when it
    reads one)."""
    from harness.environments import ENVIRONMENTS

    spec = job.stage.environment
    factory = ENVIRONMENTS.get(spec.name)
    args = dict(spec.args)
    if factory.reads_corpus:
        args["corpus"] = str(corpus_file(job))
    return factory.build(**args)


def corpus_file(job: StageJob):
    """What the environment searches: the corpus's index at paper scale (StageJob.corpus), else the generated
    dataset's corpus.jsonl."""
    from pathlib import Path

    if job.corpus is not None:
        return job.corpus
    if job.data_dir is None:
        raise FileNotFoundError(f"environment {job.stage.environment.name!r} searches a corpus; the stage has no data")
    path = Path(job.data_dir) / "corpus.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"environment {job.stage.environment.name!r} searches {path}, which is missing")
    return path


class VllmTurns:
    """Turns sampled by a GRPO trainer's vLLM engine (TRL's VLLMGeneration), one call per turn: its completion limit
    set to the turn's, the stop strings added to its sampling arguments (the stop string kept in the output), both
    put back after the call."""

    lockstep = True

    def __init__(self, trainer) -> None:
        self.generation, self.accelerator = trainer.vllm_generation, trainer.accelerator

    def sample(self, contexts: list[list[int]], stops: tuple[str, ...], max_new: int):
        import torch

        count = torch.tensor([len(contexts)], device=self.accelerator.device)
        most = int(self.accelerator.gather(count).max())
        if most == 0:  # every rank is done with this turn: no call anywhere
            return []
        padded = contexts + [contexts[0] if contexts else [0]] * (most - len(contexts))
        g = self.generation
        saved = g.max_completion_length, g.generation_kwargs
        g.max_completion_length = max_new
        if stops:  # the stop string's own tokens kept, so the environment reads the call's closing tag
            g.generation_kwargs = {**(saved[1] or {}), "stop": list(stops), "include_stop_str_in_output": True}
        try:
            _, completions, logprobs, _ = g.generate(prompts=padded, images=None, num_generations=1)
        finally:
            g.max_completion_length, g.generation_kwargs = saved
        n = len(contexts)  # this rank's own; the padding's answers are dropped
        per_token = logprobs[:n] if logprobs is not None else [None] * n
        return [(list(ids), [lp[0] for lp in lps] if lps is not None else None)
                for ids, lps in zip(completions[:n], per_token, strict=True)]  # fmt: skip


def rollout(rows, make_env, args: dict):
    """TRL's rollout_func: one episode per prompt it is given (the sampler has repeated each num_generations
    times), the environment's tokens masked, the episode's reward as an extra column for the rewards (`episode_reward`),
    its counts logged as `env/<count>`; with vLLM, the sampled tokens' log-probabilities."""
    by_prompt = {r["prompt"]: r for r in rows}

    def rollout_func(prompts: list, trainer) -> dict:
        from harness.environments.episodes import run_episodes

        model = trainer.accelerator.unwrap_model(trainer.model)
        was_training = model.training
        model.eval()
        try:
            episodes = run_episodes(
                model, trainer.processing_class, prompts, [by_prompt[p] for p in prompts], make_env,
                max_turns=args["max_turns"], max_turn_tokens=args["max_turn_tokens"],
                max_tokens=args["max_completion_length"], temperature=args["temperature"],
                top_p=args.get("top_p", 1.0), progress=progress(trainer) if was_training else None,
                sampler=VllmTurns(trainer) if getattr(trainer, "use_vllm", False) else None,
            )  # fmt: skip
        finally:
            model.train(was_training)
        metrics = trainer._metrics["train" if was_training else "eval"]
        for key in sorted({k for e in episodes for k in e.stats}):
            metrics[f"env/{key}"].append(sum(e.stats.get(key, 0.0) for e in episodes) / len(episodes))
        return {
            "prompt_ids": [e.prompt_ids for e in episodes],
            "completion_ids": [e.ids for e in episodes],
            "logprobs": [e.logprobs for e in episodes] if episodes and episodes[0].logprobs is not None else None,
            "env_mask": [e.mask for e in episodes],
            "env_reward": [e.reward for e in episodes],
        }

    return rollout_func


def progress(trainer) -> float:
    """The share of the stage's optimizer steps done when a rollout starts (0 at the first)."""
    return min(trainer.state.global_step / max(trainer.state.max_steps, 1), 1.0)


def build_trainer(job: StageJob, rows, ckpt_dir):
    """grpo's trainer, generating through `rollout` (transformers in this process, or the trainer's vLLM)."""
    import os

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is TRL's experimental hook, used knowingly
    return grpo.build_trainer(job, rows, ckpt_dir, MultiTurnArgs, grpo.generation_args(job.stage.args),
                              rollout_func=rollout(list(rows), environment_factory(job), job.stage.args))  # fmt: skip


def run(job: StageJob) -> dict:
    from harness.stages.plumbing import fit, split_rows

    spec = job.stage.environment
    record = {"generation": grpo.generation_record(grpo.generation_args(job.stage.args)) | {"episodes": True},
              "environment": {"name": spec.name} | spec.args}  # fmt: skip
    return fit(job, build_trainer, split_rows(job), on_resume=lambda trainer, ckpt: trainer.load_reward_state(ckpt),
               record=record)  # fmt: skip
