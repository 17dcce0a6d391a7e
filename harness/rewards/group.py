"""Group-aware rewards: a completion is scored against the other completions of its prompt.

A group is the completions sharing an `id` (TRL places them contiguously, but nothing here relies on
it). When a group can be split over processes, wrap the reward in `across_processes`.
"""

from __future__ import annotations

import difflib
import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence

from harness import device
from harness.grader import extract_answer, majority_answer
from harness.rewards import RewardFn, register_reward


def group_indices(keys: Sequence[Hashable]) -> dict[Hashable, list[int]]:
    """Positions of each key, in order of first appearance.

    >>> group_indices(["a", "b", "a"])
    {'a': [0, 2], 'b': [1]}
    """
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        groups[key].append(i)
    return dict(groups)


@register_reward("majority_vote", needs_labels=False, group_aware=True)
def majority_vote() -> RewardFn:
    """Label-free pseudo-reward of test-time RL: r_i = 1[ans_i == majority answer of i's group].

    Groups are the completions sharing an `id`. A completion with no answer gets 0, and so does
    every completion of a group where nobody answered.

    >>> majority_vote()(["3", "4", "4", "7", "7", "x"], id=[0, 0, 0, 1, 1, 1])
    [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    """

    def reward(completions: list[str], id: list, **_) -> list[float]:  # noqa: A002 (dataset column)
        answers = [extract_answer(c) for c in completions]
        rewards = [0.0] * len(completions)
        for members in group_indices(id).values():
            vote = majority_answer([answers[i] for i in members])
            for i in members:
                rewards[i] = float(vote is not None and answers[i] == vote)
        return rewards

    return reward


@register_reward("novelty", needs_labels=False, group_aware=True)
def novelty(similarity: str = "edit", model: str | None = None) -> RewardFn:
    """Diversity within a group: r_i = 1 - mean_{j in group(i), j != i} sim(c_i, c_j); a lone completion gets 0.

    `similarity="edit"`: difflib's SequenceMatcher ratio of the two texts (2 * matched chars / total
    chars; autojunk off, so long texts are not judged on their rare characters only).
    `similarity="embedding"`: cosine of the mean-pooled last hidden states of the transformers model
    `model` (a local path or hub id), loaded once, on first use.

    >>> novelty()(["abcd", "abcd", "wxyz", "solo"], id=[0, 0, 0, 1])
    [0.5, 0.5, 1.0, 0.0]
    """
    if similarity == "edit":
        if model is not None:
            raise ValueError("novelty: `model` is only used with similarity='embedding'")
        pairwise = _edit_similarities
    elif similarity == "embedding":
        if model is None:
            raise ValueError("novelty: similarity='embedding' needs `model` (a local path or hub id)")
        pairwise = _Embedder(model).similarities
    else:
        raise ValueError(f"novelty: unknown similarity {similarity!r}; choose 'edit' or 'embedding'")

    def reward(completions: list[str], id: list, **_) -> list[float]:  # noqa: A002 (dataset column)
        sim = pairwise(completions)
        rewards = [0.0] * len(completions)
        for members in group_indices(id).values():
            for i in members:
                others = [sim(i, j) for j in members if j != i]
                rewards[i] = 1.0 - sum(others) / len(others) if others else 0.0
        return rewards

    return reward


def _edit_similarities(texts: list[str]) -> Callable[[int, int], float]:
    """sim(i, j) = SequenceMatcher ratio, symmetric (the ratio itself can differ with argument order)."""
    cache: dict[tuple[int, int], float] = {}

    def sim(i: int, j: int) -> float:
        a, b = min(i, j), max(i, j)
        if (a, b) not in cache:
            cache[a, b] = difflib.SequenceMatcher(None, texts[a], texts[b], autojunk=False).ratio()
        return cache[a, b]

    return sim


class _Embedder:
    """Mean-pooled last hidden states of a transformers model; loaded on first use."""

    def __init__(self, name: str, batch_size: int = 32) -> None:
        self.name, self.batch_size = name, batch_size
        self.model = self.tokenizer = None

    def similarities(self, texts: list[str]) -> Callable[[int, int], float]:
        unit = self.embed(texts)
        unit = unit / unit.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # a text with no tokens stays 0
        cos = (unit @ unit.T).tolist()  # (N, N)
        return lambda i, j: cos[i][j]

    def embed(self, texts: list[str]):
        import torch

        self._load()
        on = next(self.model.parameters()).device
        out = []
        with torch.no_grad():
            for k in range(0, len(texts), self.batch_size):
                enc = self.tokenizer(texts[k : k + self.batch_size], return_tensors="pt", padding=True).to(on)
                hidden = self.model(**enc).last_hidden_state.float()  # (B, T, H)
                mask = enc["attention_mask"].unsqueeze(-1).float()  # (B, T, 1)
                out.append((hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0))  # (B, H)
        return torch.cat(out).cpu()

    def _load(self) -> None:
        if self.model is not None:
            return
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(self.name)
        self.tokenizer.padding_side = "right"  # a causal model then sees each text as if alone
        if self.tokenizer.pad_token is None:  # padding is masked out of the pooling: any token will do
            if self.tokenizer.eos_token is None:
                raise ValueError(f"novelty: tokenizer of {self.name!r} has neither a pad nor an eos token")
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModel.from_pretrained(self.name).eval()
        if device.cuda():
            self.model.to(torch.device("cuda", torch.cuda.current_device()))


@register_reward("paraphrase_agreement", needs_labels=False, group_aware=True)
def paraphrase_agreement() -> RewardFn:
    """Co-Reward's cross-view vote: r_i = 1[ans_i == majority answer of the OTHER view of i's pair].

    Rows carry `pair` (a question and its reworded twin share it) and `view` (0 or 1); a view's
    completions vote for the twin's label, so neither can reward itself into a collapse. A row gets 0
    when its twin view is absent from the batch or nobody there answered (0 rather than None: every
    completion of the group then gets the same reward, hence no advantage, as with None).

    >>> paraphrase_agreement()(["4", "5", "4", "4", "9"], pair=[0, 0, 0, 0, 1], view=[0, 0, 1, 1, 0])
    [1.0, 0.0, 1.0, 1.0, 0.0]
    """

    def reward(completions: list[str], pair: list, view: list, **_) -> list[float]:
        if any(v not in (0, 1) for v in view):
            raise ValueError(f"paraphrase_agreement: `view` must be 0 or 1, got {sorted(set(view))}")
        answers = [extract_answer(c) for c in completions]
        groups = group_indices([(p, int(v)) for p, v in zip(pair, view, strict=True)])
        votes = {key: majority_answer([answers[i] for i in members]) for key, members in groups.items()}
        rewards = [0.0] * len(completions)
        for (p, v), members in groups.items():
            twin_vote = votes.get((p, 1 - v))
            for i in members:
                rewards[i] = float(twin_vote is not None and answers[i] == twin_vote)
        return rewards

    return reward


def weighted_vote(answers: list, weights: list[float]):
    """The answer with the largest total weight (ties: more votes, then the first seen); None when nobody answered.

    >>> weighted_vote(["4", "4", "7", None], [0.2, 0.3, 0.9, 1.0]), weighted_vote([None, None], [1.0, 1.0])
    ('7', None)
    """
    totals: dict = {}
    for a, w in zip(answers, weights, strict=True):
        if a is not None:
            weight, votes, first = totals.get(a, (0.0, 0, len(totals)))
            totals[a] = (weight + w, votes + 1, first)
    return max(totals, key=lambda a: (totals[a][0], totals[a][1], -totals[a][2])) if totals else None


def _check_subgroups(subgroups: int = 1) -> None:
    if not 1 <= subgroups <= 64:
        raise ValueError(f"subgroups must be in 1..64, got {subgroups}")


@register_reward("confidence_vote", needs_labels=False, group_aware=True, needs_policy=True,
                 validate=_check_subgroups)  # fmt: skip
def confidence_vote(subgroups: int = 1) -> RewardFn:
    """SCOPE's pseudo-label: a vote weighted by the policy's confidence in each completion, within subgroups.

    conf_j = exp(mean_t log p(c_j,t | prompt, c_j,<t)) under the live policy (the geometric-mean token probability);
    each group (completions sharing an `id`) is cut into `subgroups` contiguous parts, each part's label is the
    answer of largest total confidence (`weighted_vote`), and r_i = 1[ans_i == the label of i's part]. A right
    answer the policy is sure of beats a more frequent one it is unsure of, which a plain majority cannot do.
    """
    _check_subgroups(subgroups)

    def reward(completions: list[str], id: list, prompts: list | None = None, prompt: list | None = None,  # noqa: A002
               **_) -> list[float]:  # fmt: skip
        if reward.policy is None:
            raise RuntimeError("confidence_vote scores with the policy: set `fn.policy` (the trainer does)")
        answers = [extract_answer(c) for c in completions]
        logps = reward.policy.logprobs([str(p) for p in (prompts or prompt)], completions)
        conf = [math.exp(sum(lp) / len(lp)) if lp else 0.0 for lp in logps]
        rewards = [0.0] * len(completions)
        for members in group_indices(id).values():
            size = -(-len(members) // subgroups)
            for start in range(0, len(members), size):
                part = members[start : start + size]
                label = weighted_vote([answers[i] for i in part], [conf[i] for i in part])
                for i in part:
                    rewards[i] = float(label is not None and answers[i] == label)
        return rewards

    reward.policy = None
    return reward
