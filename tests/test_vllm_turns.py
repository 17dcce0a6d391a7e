"""Multi-turn episodes sampled by a GRPO trainer's vLLM engine (harness.stages.multiturn.VllmTurns). No GPU runs the
real engine here: a stand-in with TRL's VLLMGeneration interface generates with the toy model, and two real gloo
ranks check that every rank calls the engine as often with as many contexts."""

from __future__ import annotations

import json

import torch

from harness.world.splits import read_split
from tests.test_multiturn import toy  # noqa: F401  (the toy model fixture)


class FakeVllm:
    """TRL's VLLMGeneration as the rollout uses it, generating greedily with a transformers model: `generate` returns
    (prompt ids, completion ids, per-token [[logprob]], None), each completion stopping after the token that
    completes one of `generation_kwargs["stop"]` (vLLM's token ids keep the stop's tokens) or at
    `max_completion_length`. It records what each call asked for."""

    def __init__(self, model, tokenizer, max_completion_length=999, generation_kwargs=None):
        self.model, self.tokenizer = model, tokenizer
        self.max_completion_length, self.generation_kwargs = max_completion_length, generation_kwargs
        self.calls = []

    @torch.no_grad()
    def generate(self, prompts, images, num_generations):
        stops = (self.generation_kwargs or {}).get("stop", [])
        kept = (self.generation_kwargs or {}).get("include_stop_str_in_output")
        self.calls.append((len(prompts), self.max_completion_length, tuple(stops), kept))
        completions, logprobs = [], []
        for ids in prompts:
            ids, new, lps = list(ids), [], []
            for _ in range(self.max_completion_length):
                logits = self.model(torch.tensor([ids + new])).logits[0, -1].float()
                token = int(logits.argmax())
                new.append(token)
                lps.append([float(torch.log_softmax(logits, -1)[token])])
                text = self.tokenizer.decode(new, skip_special_tokens=True)
                if token == self.tokenizer.eos_token_id or any(s in text for s in stops):
                    break
            completions.append(new)
            logprobs.append(lps)
        return prompts, completions, logprobs, None


class OneProcess:
    """The accelerator a single process has (gather of a rank's tensor is itself)."""

    device = torch.device("cpu")

    @staticmethod
    def gather(t):
        return t


def test_vllm_turns_sample_each_turn_with_its_limit_and_stops_and_return_log_probs(toy):  # noqa: F811
    """The episodes a vLLM engine samples greedily are those transformers samples greedily; each turn is one call
    with the turn's token limit and the environment's stop strings (put back after); policy tokens carry the
    engine's log-probabilities, the environment's 0."""
    import types

    from harness.environments import ENVIRONMENTS
    from harness.environments.episodes import run_episodes
    from harness.stages.multiturn import VllmTurns

    model, tok, root = toy
    rows = read_split(root / "data", "train")[:6]
    make_env = ENVIRONMENTS.get("calculator").build()
    kw = dict(max_turns=3, max_turn_tokens=8, max_tokens=40)
    reference = run_episodes(model, tok, [r["prompt"] for r in rows], rows, make_env, greedy=True, **kw)
    fake = FakeVllm(model, tok, generation_kwargs={"seed": 1})
    trainer = types.SimpleNamespace(vllm_generation=fake, accelerator=OneProcess())
    episodes = run_episodes(model, tok, [r["prompt"] for r in rows], rows, make_env, sampler=VllmTurns(trainer), **kw)
    assert [e.ids for e in episodes] == [e.ids for e in reference] and [e.mask for e in episodes] == [
        e.mask for e in reference]  # fmt: skip
    assert fake.calls and all(c[1:] == (8, tuple(make_env().stop), True) for c in fake.calls)
    assert fake.max_completion_length == 999 and fake.generation_kwargs == {"seed": 1}  # put back
    assert len(fake.calls) == max(len(e.turns) for e in episodes)  # one call per turn some episode still takes
    for e in episodes:
        assert len(e.logprobs) == len(e.ids)
        policy = [lp for lp, m in zip(e.logprobs, e.mask, strict=True) if m == 1]
        assert all(lp <= 0 for lp in policy if lp == lp) and any(lp < 0 for lp in policy)
        assert all(lp == 0.0 for lp, m in zip(e.logprobs, e.mask, strict=True) if m == 0)


def lockstep_worker(log_dir: str) -> None:
    """One of two gloo ranks: rank 0 runs 3 episodes, rank 1 one; every call has as many contexts on both ranks."""
    import json
    import os
    import types

    import torch.distributed as dist

    from harness.environments.episodes import run_episodes
    from harness.stages.multiturn import VllmTurns
    from tests.conftest import CharTokenizer

    dist.init_process_group("gloo")
    rank = dist.get_rank()

    class Gloo:
        device = torch.device("cpu")

        @staticmethod
        def gather(t):
            out = [torch.zeros_like(t) for _ in range(dist.get_world_size())]
            dist.all_gather(out, t)
            return torch.cat(out)

    class Caller:
        """Calls twice (`ab|`, answered `=;`), then answers `x` and stops."""

        stop = ("|",)

        def reset(self, row):
            self.turns = 0

        def step(self, text):
            from harness.environments import Turn

            self.turns += 1
            return Turn("=;", done=False, tool_call=True) if self.turns < 3 else Turn(None, done=True)

        def reward(self):
            return 1.0

        def stats(self):
            return {"success": 1.0}

    class Engine:
        max_completion_length, generation_kwargs, sizes = 99, None, []

        def generate(self, prompts, images, num_generations):
            sizes = [None, None]
            dist.all_gather_object(sizes, len(prompts))
            assert sizes[0] == sizes[1], sizes  # a collective with equal shares on every rank
            Engine.sizes.append(len(prompts))
            return prompts, [[ord("a"), ord("b"), ord("|")] for _ in prompts], [[[-0.5]] * 3 for _ in prompts], None

    n = 3 if rank == 0 else 1
    trainer = types.SimpleNamespace(vllm_generation=Engine(), accelerator=Gloo())
    episodes = run_episodes(None, CharTokenizer(), ["q"] * n, [{}] * n, Caller, max_turns=4, max_turn_tokens=5,
                            max_tokens=100, sampler=VllmTurns(trainer))  # fmt: skip
    with open(os.path.join(log_dir, f"rank{rank}.json"), "w") as f:
        json.dump({"sizes": Engine.sizes, "turns": [len(e.turns) for e in episodes]}, f)
    dist.destroy_process_group()


def test_vllm_turns_keep_every_rank_in_step_when_their_episodes_differ(tmp_path):
    """Two real gloo ranks with 3 and 1 episodes: every engine call has 3 contexts on both (the second pads), both
    stop calling together once every episode is over, and each rank keeps only its own episodes' turns."""
    from tests.conftest import run_ranks

    run_ranks(f"from tests.test_vllm_turns import lockstep_worker; lockstep_worker({str(tmp_path)!r})", 2)
    logs = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert logs[0]["sizes"] == logs[1]["sizes"] == [3, 3, 3]  # 3 turns each episode, then no call on either rank
    assert logs[0]["turns"] == [3, 3, 3] and logs[1]["turns"] == [3]
