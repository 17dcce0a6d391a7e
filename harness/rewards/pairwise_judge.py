"""A frozen generative judge that compares two completions: Writing-Zero's pairwise generative reward model, as
BRPO uses it.

Each completion c_i of a group is judged against one completion of the same group drawn as a temporary reference
(`reference_index`, the draw `bootstrapped_winrate` makes: the same on every process and after a resume). The judge
reads `template` with `{prompt}`, `{a}` (the completion judged) and `{b}` (the reference), and its probability of
the first label over the two (`labels: [A, B]`, read right after the template as harness/rewards/judge.py reads a
verdict) is P(a better than b). With `both_orders` the pair is also shown the other way round and the two readings
are averaged,

    r_i = (P_A(c_i, c_ref) + 1 - P_A(c_ref, c_i)) / 2,

which removes a judge's preference for whichever response comes first. The reference itself gets 0.5, as does a
lone completion. One or two judgements per completion, against the n - 1 of a round robin. Every rendered pair is
cached, so a pair met again is not judged again. No gold answer is read: the reward needs no labels.
"""

from __future__ import annotations

import hashlib
import string

from harness.rewards import register_reward
from harness.rewards.group import group_indices
from harness.rewards.judge import Judge, _text
from harness.rewards.preference_oracle import reference_index


def _check(model: str = "", template: str = "", labels: list | None = None, both_orders: bool = True,
           batch_size: int = 16, chat: bool = False, location: str = "") -> None:  # fmt: skip
    if not model:
        raise ValueError("model: a model config name (configs/models/) for the judge")
    fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    if not {"a", "b"} <= fields or not fields <= {"prompt", "a", "b"}:
        raise ValueError(f"template: fields {{a}} and {{b}} (optionally {{prompt}}), got {sorted(fields) or 'none'}")
    labels = ["A", "B"] if labels is None else labels
    if len(labels) != 2 or len({str(x) for x in labels}) != 2 or not all(str(x) for x in labels):
        raise ValueError(f"labels: two distinct labels, the first meaning 'a is better', got {labels}")
    if batch_size < 1:
        raise ValueError(f"batch_size: at least 1, got {batch_size}")


class PairwiseJudge:
    """The reward function: `(completions, prompts, id) -> win probabilities against each group's reference`."""

    def __init__(self, judge: Judge, template: str, both_orders: bool) -> None:
        self.judge, self.template, self.both_orders = judge, template, both_orders
        self.cache: dict[str, float] = {}

    def render(self, prompt, a, b) -> str:
        return self.template.format(prompt=_text(prompt), a=_text(a).strip(), b=_text(b).strip())

    def _scores(self, texts: list[str]) -> list[float]:
        keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        todo = {k: t for k, t in zip(keys, texts, strict=True) if k not in self.cache}
        if todo:
            self.cache.update(zip(todo, self.judge.score_texts(list(todo.values())), strict=True))
        return [self.cache[k] for k in keys]

    def __call__(self, completions: list, prompts: list | None = None, id: list | None = None, log_metric=None,  # noqa: A002 (dataset column)
                 **_) -> list[float]:  # fmt: skip
        if prompts is None or id is None:
            raise ValueError("pairwise_judge: needs the prompts and the group ids (`id`) of the completions")
        out = [0.5] * len(completions)
        pairs = []  # (i, text with c_i first, text with the reference first)
        for key, members in group_indices(id).items():
            ref = members[reference_index([_text(completions[i]) for i in members], key)]
            for i in members:
                if i != ref:
                    p = prompts[i]
                    pairs.append((i, self.render(p, completions[i], completions[ref]),
                                  self.render(p, completions[ref], completions[i])))  # fmt: skip
        first = self._scores([t for _, t, _ in pairs])
        second = self._scores([t for _, _, t in pairs]) if self.both_orders else [None] * len(pairs)
        for (i, _, _), p1, p2 in zip(pairs, first, second, strict=True):
            out[i] = p1 if p2 is None else (p1 + 1.0 - p2) / 2
        if log_metric is not None:
            log_metric("judge/pairs", float(len(pairs)))
        return out


@register_reward("pairwise_judge", needs_labels=False, group_aware=True, reads_model=True, validate=_check)
def pairwise_judge(model: str, template: str, labels: list | None = None, both_orders: bool = True,
                   batch_size: int = 16, chat: bool = False, location: str = "") -> PairwiseJudge:  # fmt: skip
    """BRPO with a generative judge: each completion's probability of beating its group's bootstrapped reference
    (module docstring); `model` names the judge's model config, `location` is where the harness put it."""
    _check(model, template, labels, both_orders, batch_size, chat, location)
    labels = ["A", "B"] if labels is None else [str(x) for x in labels]
    judge = Judge(location, "{prompt}", "probability", labels, None, 1.0, None, 1, batch_size, chat, reference=False)
    return PairwiseJudge(judge, template, both_orders)
