"""Generative judges: a frozen language model inside a reward (LLM-as-judge).

The reward's `model` names a model config (configs/models/): a toy model trained here (toy-sum-judge checks sums),
a packaged one (SmolLM2 at small-real scale) or a hub model (the judge a paper names). The harness builds or fetches
it before the stage like a base model and passes the folder it lies in as `location`; it is loaded once, frozen, in
eval mode, on the policy's device (bfloat16 on a GPU).

Each completion is rendered into `template` (`{prompt}`, `{completion}`, and with `judge_with_reference` the gold
`{answer}`; `chat: true` wraps it in the judge's chat template) and the judge's verdict is parsed into a score in
[0, 1]:

- `parse: probability`: with `labels: [positive, negative]` the score is p(positive) / (p(positive) + p(negative))
  over the first token of each label (written alone or after a space), read at the position after the template (one
  forward pass), or with `think: true` where the judge, writing greedily (up to `max_new_tokens`) after the template,
  first writes one of them: its reasoning first, then a soft verdict. A judge that writes neither label is
  unscorable (None). The soft verdict is the judge's confidence, as a generative verifier's soft reward reads it.
- `parse: score`: the judge writes up to `max_new_tokens` greedily; `pattern`'s one group is read as a number and
  divided by `max_score` (clipped to [0, 1]); no match is unscorable (None).

With `threshold`, the score becomes 1.0 at or above it and 0.0 below (a binary verdict). Scores are cached by the
rendered text (which holds the prompt, completion and answer), so a completion repeated in a group or across steps
is judged once; the judge is deterministic (no sampling, no dropout), so a cached score is the score. The model and
template are stage args, hence in the stage's fingerprint; a rebuilt judge changes the files its checkpoints are
keyed by (harness.stages.plumbing.checkpoint_key), so a run never resumes across two judges.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict

from harness.rewards import register_reward

PARSES = ("probability", "score")
CACHE_SIZE = 200_000
"""Verdicts kept (least recently used dropped first): some hundred steps of a paper-scale run's completions."""


def _check(model: str = "", template: str = "", parse: str = "probability", labels: list | None = None,
           pattern: str | None = None, max_score: float = 10.0, threshold: float | None = None,
           max_new_tokens: int = 32, batch_size: int = 16, chat: bool = False, think: bool = False, *,
           reference: bool = False) -> None:  # fmt: skip
    """Config-time checks (ValueError): the template's fields, the parse and what it needs."""
    fields = set(re.findall(r"{(\w*)}", template))
    needed = {"prompt", "completion"} | ({"answer"} if reference else set())
    if missing := needed - fields:
        raise ValueError(f"template: has no {{{sorted(missing)[0]}}} field (it needs {sorted(needed)})")
    if extra := fields - needed:
        known = "" if reference else " (the gold answer is judge_with_reference's)"
        raise ValueError(f"template: unknown field {{{sorted(extra)[0]}}}{known}; fields: {sorted(needed)}")
    if parse not in PARSES:
        raise ValueError(f"parse: {parse!r} is not one of {list(PARSES)}")
    if parse == "probability":
        if labels is not None and (len(labels) != 2 or len(set(map(str, labels))) != 2 or not all(labels)):
            raise ValueError(f"labels: two different words, the positive verdict first (got {labels})")
    else:
        if think:
            raise ValueError("think: only with parse `probability` (parse `score` always reads what the judge writes)")
        if not pattern:
            raise ValueError("pattern: parse `score` needs a regular expression with one group around the number")
        try:
            groups = re.compile(pattern).groups
        except re.error as e:
            raise ValueError(f"pattern: not a regular expression ({e})") from None
        if groups != 1:
            raise ValueError(f"pattern: needs exactly one group (the number), has {groups}")
        if not max_score > 0:
            raise ValueError(f"max_score: must be positive, got {max_score}")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold: in [0, 1], got {threshold}")
    if max_new_tokens < 1 or batch_size < 1:
        raise ValueError("max_new_tokens and batch_size: at least 1")


def _text(x) -> str:
    """A prompt or completion as text: a string, or (conversational data) the last message's content."""
    if isinstance(x, str):
        return x
    return str(x[-1]["content"]) if x else ""


class Judge:
    """The reward function: `(completions, prompts, answer=None) -> scores`; see the module docstring."""

    def __init__(self, location: str, template: str, parse: str, labels: list[str], pattern: str | None,
                 max_score: float, threshold: float | None, max_new_tokens: int, batch_size: int, chat: bool,
                 reference: bool, think: bool = False) -> None:  # fmt: skip
        self.location, self.template, self.parse, self.labels = location, template, parse, [str(x) for x in labels]
        self.think = think
        self.pattern = re.compile(pattern) if pattern else None
        self.max_score, self.threshold, self.max_new_tokens = float(max_score), threshold, max_new_tokens
        self.batch_size, self.chat, self.reference = batch_size, chat, reference
        self.cache: OrderedDict[str, float | None] = OrderedDict()
        self.calls = 0
        """Texts the judge model has read (cache misses), for the step's log and the tests."""
        self._model = self._tokenizer = None

    def render(self, prompt, completion, answer=None) -> str:
        fields = {"prompt": _text(prompt), "completion": _text(completion).strip()}
        return self.template.format(**fields | ({"answer": str(answer)} if self.reference else {}))

    def __call__(self, completions: list, prompts: list | None = None, answer: list | None = None, log_metric=None,
                 **_) -> list[float | None]:  # fmt: skip
        if prompts is None:
            raise ValueError(f"judge: no prompts column to judge {len(completions)} completions against")
        golds = answer if self.reference else [None] * len(completions)
        texts = [self.render(p, c, a) for p, c, a in zip(prompts, completions, golds, strict=True)]
        keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        todo = {k: t for k, t in zip(keys, texts, strict=True) if k not in self.cache}
        if todo:
            for k, s in zip(todo, self.score_texts(list(todo.values())), strict=True):
                self.cache[k] = s
        scores = [self._final(self.cache[k]) for k in keys]
        for k in keys:
            self.cache.move_to_end(k)
        while len(self.cache) > CACHE_SIZE:
            self.cache.popitem(last=False)
        if log_metric is not None:
            log_metric("judge/judged", float(len(todo)))
            log_metric("judge/cached", float(len(keys) - len(todo)))
        return scores

    def _final(self, score: float | None) -> float | None:
        if score is None or self.threshold is None:
            return score
        return 1.0 if score >= self.threshold else 0.0

    # -- the model

    def _load(self):
        if self._model is None:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            on_gpu = torch.cuda.is_available()
            tok = AutoTokenizer.from_pretrained(self.location)
            if tok.pad_token_id is None:
                tok.pad_token = tok.eos_token
            model = AutoModelForCausalLM.from_pretrained(self.location, dtype=torch.bfloat16 if on_gpu else None)
            model.requires_grad_(False)
            model.eval()
            if on_gpu:
                model.to(torch.device("cuda", torch.cuda.current_device()))
            self._model, self._tokenizer = model, tok
            if self.parse == "probability":
                self._label_ids = self._first_tokens()
        return self._model, self._tokenizer

    def _first_tokens(self) -> list[list[int]]:
        """Per label, the first token of the label written alone and after a space (where that is not a bare space)."""
        tok, out = self._tokenizer, []
        for w in self.labels:
            firsts = [tok(v, add_special_tokens=False)["input_ids"][:1] for v in (w, " " + w)]
            out.append(sorted({i[0] for i in firsts if i and tok.decode(i).strip()}))
        if not all(out) or set(out[0]) & set(out[1]):
            raise ValueError(f"judge {self.location}: labels {self.labels} need different first tokens in its "
                             f"vocabulary (got {out})")  # fmt: skip
        return out

    def _ids(self, text: str) -> list[int]:
        tok = self._tokenizer
        if self.chat:
            text = tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                           add_generation_prompt=True)  # fmt: skip
        return tok(text, add_special_tokens=False)["input_ids"]

    def score_texts(self, texts: list[str]) -> list[float | None]:
        """The judge's score of each rendered text (no cache, no threshold)."""
        import torch

        model, _ = self._load()
        self.calls += len(texts)
        out: list[float | None] = []
        with torch.no_grad():
            for k in range(0, len(texts), self.batch_size):
                ids = [self._ids(t) for t in texts[k : k + self.batch_size]]
                if self.parse == "score":
                    out += [self.read_score(t) for t in self._generated(ids)[0]]
                else:
                    out += self._thought(ids) if self.think else self._probability(ids)
        return out

    def _verdict(self, logits) -> float:
        """p(positive) / (p(positive) + p(negative)) from one position's logits (V,), over the labels' tokens."""
        import torch

        pos, neg = (torch.logsumexp(logits[ids].float(), dim=0) for ids in self._label_ids)
        return float(torch.sigmoid(pos - neg))

    def _probability(self, ids: list[list[int]]) -> list[float]:
        import torch

        model, tok = self._model, self._tokenizer
        device = next(model.parameters()).device
        width = max(map(len, ids))
        batch = torch.full((len(ids), width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for b, seq in enumerate(ids):  # right padding: each text's positions are its own
            batch[b, : len(seq)], mask[b, : len(seq)] = torch.tensor(seq), 1
        logits = model(input_ids=batch.to(device), attention_mask=mask.to(device), use_cache=False).logits
        return [self._verdict(logits[b, len(s) - 1]) for b, s in enumerate(ids)]

    def _thought(self, ids: list[list[int]]) -> list[float | None]:
        """The soft verdict where the judge first writes a label's token after its reasoning; None if it never does."""
        _, steps, logits = self._generated(ids)
        labels = set(self._label_ids[0]) | set(self._label_ids[1])
        out: list[float | None] = []
        for b, written in enumerate(steps):
            at = next((t for t, token in enumerate(written) if token in labels), None)
            out.append(None if at is None else self._verdict(logits[at][b]))
        return out

    def _generated(self, ids: list[list[int]]) -> tuple[list[str], list[list[int]], tuple]:
        """Greedy continuations of a batch: their texts, their tokens, and each step's logits ((B, V) per step)."""
        import torch

        model, tok = self._model, self._tokenizer
        device = next(model.parameters()).device
        width = max(map(len, ids))
        batch = torch.full((len(ids), width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for b, seq in enumerate(ids):  # left padding: generation continues every text from its end
            batch[b, width - len(seq) :], mask[b, width - len(seq) :] = torch.tensor(seq), 1
        out = model.generate(input_ids=batch.to(device), attention_mask=mask.to(device), do_sample=False,
                             max_new_tokens=self.max_new_tokens, pad_token_id=tok.pad_token_id,
                             return_dict_in_generate=True, output_logits=True)  # fmt: skip
        new = out.sequences[:, width:]
        return tok.batch_decode(new, skip_special_tokens=True), new.tolist(), out.logits

    def read_score(self, written: str) -> float | None:
        """The number `pattern` finds in what the judge wrote, over max_score and clipped to [0, 1]; None without one.

        >>> Judge("", "{prompt}{completion}", "score", [], r"Score: (\\d+)", 10, None, 8, 1, False, False).read_score(
        ...     "Fine work. Score: 7/10")
        0.7
        """
        found = self.pattern.search(written) if self.pattern else None
        if found is None:
            return None
        try:
            value = float(found.group(1))
        except ValueError:
            return None
        return min(1.0, max(0.0, value / self.max_score))


def _build(model: str, template: str, parse: str, labels: list | None, pattern: str | None, max_score: float,
           threshold: float | None, max_new_tokens: int, batch_size: int, chat: bool, think: bool, location: str,
           reference: bool) -> Judge:  # fmt: skip
    _check(model, template, parse, labels, pattern, max_score, threshold, max_new_tokens, batch_size, chat, think,
           reference=reference)  # fmt: skip
    return Judge(location, template, parse, list(labels or ["yes", "no"]), pattern, max_score, threshold,
                 max_new_tokens, batch_size, chat, reference, think)  # fmt: skip


def _check_free(**args) -> None:
    _check(**args, reference=False)


def _check_reference(**args) -> None:
    _check(**args, reference=True)


@register_reward("judge", needs_labels=False, reads_model=True, validate=_check_free)
def judge(model: str, template: str, parse: str = "probability", labels: list | None = None,
          pattern: str | None = None, max_score: float = 10.0, threshold: float | None = None,
          max_new_tokens: int = 32, batch_size: int = 16, chat: bool = False, think: bool = False,
          location: str = "") -> Judge:  # fmt: skip
    """A frozen judge's verdict on each completion, without the gold answer (template fields {prompt},
    {completion}): a reference-free reward, usable on unlabeled prompts."""
    return _build(model, template, parse, labels, pattern, max_score, threshold, max_new_tokens, batch_size, chat,
                  think, location, reference=False)  # fmt: skip


@register_reward("judge_with_reference", needs_labels=True, reads_model=True, validate=_check_reference)
def judge_with_reference(model: str, template: str, parse: str = "probability", labels: list | None = None,
                         pattern: str | None = None, max_score: float = 10.0, threshold: float | None = None,
                         max_new_tokens: int = 32, batch_size: int = 16, chat: bool = False, think: bool = False,
                         location: str = "") -> Judge:  # fmt: skip
    """A frozen judge's verdict on each completion against the gold answer (template fields {prompt}, {completion},
    {answer}): a generative verifier for free-form references that rules cannot match."""
    return _build(model, template, parse, labels, pattern, max_score, threshold, max_new_tokens, batch_size, chat,
                  think, location, reference=True)  # fmt: skip
