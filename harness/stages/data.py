"""The rows a training stage sees: a dataset split, reshaped by the stage's `data_args`.

`stage_rows` loads `train` (labeled), `pool` (labels removed) or `mixture` (both, told apart by
the `labeled` column), then applies, in this order: `limit` (on a mixture: of the labeled rows;
a hub dataset's mixture is its first `limit` rows labeled and the following ones unlabeled),
`label_noise`, `paraphrase`, `repeat`. Columns: id, prompt, answer (not on `pool`; None on unlabeled `mixture` rows), the toy
world's `solution` (hidden like the answer), and when asked for: `labeled`, `noisy` (for analysis
only: rewards must not read it), `pair` and `view`.

GRPO draws a paraphrased stage's rows with `harness.stages.samplers.PairedRepeatSampler`, which keeps a row and
its twin in the same batch of distinct prompts.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from harness.config.components import DatasetConfig
from harness.config.stage import SPLITS, DataArgs, data_args_problem
from harness.files import file_format, file_name
from harness.grader import normalize
from harness.world.arithmetic import SEPARATOR, running_totals
from harness.world.splits import read_split

if TYPE_CHECKING:
    import datasets

HIDDEN = ("answer", "solution")
"""Columns that give the gold answer away: never on unlabeled rows."""


def stage_rows(dataset: DatasetConfig, data: str, args: DataArgs, data_dir: Path | None) -> datasets.Dataset:
    """The stage's training rows as a `datasets.Dataset` (see the module docstring)."""
    import datasets

    check_args(dataset, data, args)
    if data == "mixture":  # `limit` counts the labeled rows, `unlabeled` the pool rows
        if dataset.generated:
            labeled, pool = load_rows(dataset, "train", data_dir), load_rows(dataset, "pool", data_dir)
        else:  # one hub split: its first `limit` rows keep their labels, the next ones lose them
            every = load_rows(dataset, "train", data_dir)
            labeled, pool = every[: args.limit], every[args.limit :]
        labeled = labeled[: args.limit] if args.limit is not None else labeled
        rows = mixture(labeled, pool, args.unlabeled)
    elif args.limit is not None and not dataset.generated:  # the first rows only: a large hub set is never all read
        rows = list(itertools.islice(iter_rows(dataset, data_dir), args.limit))
        rows = hide_labels(rows) if data == "pool" else rows
    else:
        rows = load_rows(dataset, data, data_dir)
        rows = hide_labels(rows) if data == "pool" else rows
        rows = rows[: args.limit] if args.limit is not None else rows
    if args.label_noise > 0:
        rows = add_label_noise(rows, args.label_noise, args.seed)
    if args.paraphrase:
        rows = add_paraphrases(rows)
    rows = [{k: v for k, v in r.items() if k != "paraphrase"} for r in rows]  # a shipped twin, used or not
    return datasets.Dataset.from_list(rows * args.repeat)  # whole copies: a row and its twin stay adjacent


def check_args(dataset: DatasetConfig, data: str, args: DataArgs) -> None:
    """Refuse data_args that cannot apply, before anything is loaded."""

    def refuse(key: str, why: str) -> None:
        raise ValueError(f"data_args.{key}: {why}")

    if data not in SPLITS:
        raise ValueError(f"data: {data!r} is none of {SPLITS}")
    problem = data_args_problem(data, args)
    if problem:
        refuse(*problem)
    if data == "mixture" and not dataset.generated and args.limit is None:
        refuse("limit", f"data: mixture on hub dataset {dataset.hub_path} needs the number of labeled rows")
    if args.paraphrase and dataset.source != "toy-arithmetic" and not dataset.paraphrase_field:
        what = f"hub dataset {dataset.hub_path}" if dataset.source == "hub" else f"a {dataset.source} dataset"
        refuse("paraphrase", f"{what} must ship its paraphrases (its config's paraphrase_field names the column): "
               "rows are reworded here in toy arithmetic only")  # fmt: skip
    if args.paraphrase and not dataset.paraphrase_field:
        check_paraphrasable(dataset.arithmetic.operators, dataset.arithmetic.min_operands)


def load_rows(dataset: DatasetConfig, split: str, data_dir: Path | None) -> list[dict]:
    """A split's rows with their gold answers: the generated files, or the hub dataset (one split there)."""
    if dataset.generated:
        return read_split(Path(data_dir), split)
    return list(iter_rows(dataset, data_dir))


def iter_rows(dataset: DatasetConfig, data_dir: Path | None) -> Iterator[dict]:
    """A fetched (hub or url) dataset's rows as a stage reads them, one at a time."""
    import datasets

    # offline jobs read the repository's snapshot (a URL's pinned file) in the hub cache (offline.offline_stage sets data_dir)
    if dataset.source == "url":
        where = Path(data_dir) / file_name(dataset.url) if data_dir else dataset.url
        ds = datasets.load_dataset(file_format(dataset.url), data_files=str(where), split="train")
    else:
        ds = datasets.load_dataset(str(data_dir) if data_dir else dataset.hub_path, dataset.hub_name,
                                   split=dataset.split or "train")  # fmt: skip
    for column, values in (dataset.where or {}).items():
        ds = ds.filter(lambda row, c=column, v=tuple(values): row[c] in v)
    solution = dataset.solution_field
    for i, row in enumerate(ds):
        yield (
            {
                "id": i,
                "prompt": bare_prompt(column_value(row, dataset.prompt_field), dataset.shipped_instruction, i),
                "answer": answer_text(column_value(row, dataset.answer_field)),
            }
            | ({"solution": str(column_value(row, solution))} if solution else {})
            | ({"paraphrase": str(column_value(row, dataset.paraphrase_field))} if dataset.paraphrase_field else {})
            | ({"tests": column_value(row, dataset.tests_field)} if dataset.tests_field else {})
            | ({"database": str(column_value(row, dataset.database_field))} if dataset.database_field else {})
        )


def check_fetched(dataset: DatasetConfig, folder: Path) -> int:
    """Read every row of a fetched dataset as a stage will (its fields, its shipped instruction), keeping none: the
    number of rows. A missing column or instruction, or no row at all (a `where` no row passes), raises ValueError
    saying which, on the head node at `harness fetch`, not on a compute node after the queue."""
    try:
        n = sum(1 for _ in iter_rows(dataset, folder))
    except KeyError as e:
        raise ValueError(e.args[0] if e.args else str(e)) from None
    if n == 0:
        raise ValueError("no rows" + (f" pass `where` {dataset.where}" if dataset.where else " in the file"))
    return n


def answer_text(value) -> str:
    """A gold answer as rows hold it: text, or a list column's answers as a JSON list (NQ's golden answers; the
    retrieval environment grades against each).

    >>> answer_text(42), answer_text(["Paris", "paris"])
    ('42', '["Paris", "paris"]')
    """
    if isinstance(value, (list, tuple)):
        return json.dumps([str(v) for v in value])
    return str(value)


def bare_prompt(prompt: str, shipped: str | None, row: int) -> str:
    """The prompt without the instruction its file ships at its end (DatasetConfig.shipped_instruction).

    >>> bare_prompt("What is 2+3? Think step by step.", "Think step by step.", 0)
    'What is 2+3?'
    """
    if not shipped:
        return prompt
    text = prompt.rstrip()
    if not text.endswith(shipped):
        raise ValueError(f"row {row}: the prompt does not end with the dataset's shipped_instruction {shipped!r} "
                         f"(it ends {text[-80:]!r})")  # fmt: skip
    return text[: -len(shipped)].rstrip()


def column_value(row: dict, path: str):
    """A row's column, or a value inside nested columns by a dotted path (list items by index).

    >>> row = {"prompt": [{"role": "user", "content": "2+2?"}], "reward_model": {"ground_truth": "4"}}
    >>> column_value(row, "prompt.0.content"), column_value(row, "reward_model.ground_truth")
    ('2+2?', '4')
    """
    if path in row:
        return row[path]
    value = row
    for part in path.split("."):
        try:
            value = value[int(part)] if isinstance(value, list) else value[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise KeyError(
                f"no {path!r} in the dataset's rows (stopped at {part!r}; columns: {', '.join(row)})"
            ) from None
    return value


def with_instruction(rows: datasets.Dataset, instruction: str) -> datasets.Dataset:
    """Each prompt followed by a blank line and `instruction` (as the evaluation asks, harness.evaluation.evaluate)."""
    return rows.map(lambda row: {"prompt": f"{row['prompt']}\n\n{instruction}"})


def chat_prompts(rows: datasets.Dataset, tokenizer) -> datasets.Dataset:
    """Each prompt as a user turn of the model's chat template, ready for the assistant's reply.

    Kept as text (not a message list) so that rewards and graders see plain completions at every scale.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"apply_chat_template: {tokenizer.name_or_path} has no chat template")

    def wrap(row: dict) -> dict:
        turn = [{"role": "user", "content": row["prompt"]}]
        return {"prompt": tokenizer.apply_chat_template(turn, tokenize=False, add_generation_prompt=True)}

    return rows.map(wrap)


def hide_labels(rows: list[dict]) -> list[dict]:
    """The rows without the columns that give the answer away."""
    return [{k: v for k, v in r.items() if k not in HIDDEN} for r in rows]


def id_offset(ids: Sequence[int]) -> int:
    """A power of ten above every id: `offset + id` is a fresh id that still shows the old one.

    >>> id_offset([0, 499]), id_offset([999]), id_offset([1000])
    (1000, 1000, 10000)
    """
    return 10 ** len(str(max(ids, default=0)))


def mixture(train: list[dict], pool: list[dict], unlabeled: int | None) -> list[dict]:
    """Labeled rows then the first `unlabeled` pool rows (None: all) with answers set to None.

    Pool ids are shifted by `id_offset` of the train ids so that ids stay unique.
    """
    offset = id_offset([r["id"] for r in train])
    pool = pool if unlabeled is None else pool[:unlabeled]
    labeled = [r | {"labeled": True} for r in train]
    hidden = [r | {k: None for k in HIDDEN if k in r} | {"id": offset + r["id"], "labeled": False} for r in pool]
    return labeled + hidden


def wrong_answer(answer: str, rng: random.Random, answers: Sequence[str]) -> str:
    """A wrong answer near `answer`: an integer 1..3 away, or else another row's different answer.

    >>> wrong_answer("42", random.Random(0), []) in {"39", "40", "41", "43", "44", "45"}
    True
    >>> wrong_answer("1/2", random.Random(0), ["1/2", "3/4"])
    '3/4'
    """
    gold = normalize(answer)
    if re.fullmatch(r"-?\d+", gold):
        return str(int(gold) + rng.choice([-3, -2, -1, 1, 2, 3]))
    others = sorted({a for a in answers if normalize(a) != gold})
    if not others:
        raise ValueError(f"data_args.label_noise: no wrong answer to give for {answer!r}")
    return rng.choice(others)


def corrupt(row: dict, wrong: str) -> dict:
    """The row with `wrong` as its answer; a scratchpad solution keeps its steps but ends in `wrong`."""
    out = row | {"answer": wrong}
    if "solution" in row:
        steps = row["solution"].split(SEPARATOR)[:-1]
        out["solution"] = SEPARATOR.join(steps + [wrong])
    return out


def add_label_noise(rows: list[dict], fraction: float, seed: int) -> list[dict]:
    """Replace the answers of `round(fraction * labeled)` labeled rows by wrong ones; mark them `noisy`."""
    rng = random.Random(seed)
    labeled = [i for i, r in enumerate(rows) if r.get("answer") is not None]
    chosen = set(rng.sample(labeled, round(fraction * len(labeled))))
    answers = [rows[i]["answer"] for i in labeled]
    return [
        corrupt(r, wrong_answer(r["answer"], rng, answers)) | {"noisy": True} if i in chosen else r | {"noisy": False}
        for i, r in enumerate(rows)
    ]


def check_paraphrasable(operators: Sequence[str], min_operands: int) -> None:
    """Refuse toy specs where some problem has no rewording (`7-3=` cannot be reordered without a unary minus)."""
    if set(operators) - {"+", "-", "*"}:
        raise ValueError(f"data_args.paraphrase: no rewording known for operators {list(operators)}")
    if "-" in operators and min_operands < 3:
        raise ValueError("data_args.paraphrase: a two-term difference (7-3=) has no rewording; use min_operands >= 3")


def reword(prompt: str) -> str:
    """The same problem with its terms (and each product's factors) in reverse order.

    A subtracted term cannot lead (no unary minus): the first positive term moves ahead of it.

    >>> reword("12+34="), reword("1+2+3="), reword("9-4+2="), reword("2+3*4="), reword("9+4-2=")
    ('34+12=', '3+2+1=', '2-4+9=', '4*3+2=', '4-2+9=')
    """
    terms = [
        (sign or "+", "*".join(reversed(product.split("*"))))
        for sign, product in re.findall(r"([+-]?)([^+\-=]+)", prompt)
    ][::-1]
    lead = next(i for i, (sign, _) in enumerate(terms) if sign == "+")
    terms.insert(0, terms.pop(lead))
    return terms[0][1] + "".join(sign + product for sign, product in terms[1:]) + "="


def twin(row: dict, offset: int) -> dict:
    """The row's reworded twin: new id `offset + id`, same answer, the scratchpad redone for the new order; a row
    whose data ship its twin (`paraphrase`) takes that one."""
    prompt = row["paraphrase"] if row.get("paraphrase") is not None else reword(row["prompt"])
    out = row | {"id": offset + row["id"], "prompt": prompt, "pair": row["id"], "view": 1}
    solution = row.get("solution")
    if solution is not None and SEPARATOR in solution:  # keep the row's (maybe corrupted) final answer
        out["solution"] = SEPARATOR.join([*map(str, running_totals(prompt)[:-1]), row["answer"]])
    return out


def add_paraphrases(rows: list[dict]) -> list[dict]:
    """Each row (view 0) followed by its twin (view 1), both with `pair` = the row's id."""
    offset = id_offset([r["id"] for r in rows])
    return [x for r in rows for x in (r | {"pair": r["id"], "view": 0}, twin(r, offset))]


def solution_prefixes(rows: datasets.Dataset, share: float, separator: str | None) -> datasets.Dataset:
    """Each prompt followed by the first floor(share x steps) steps of its row's solution (never the last step), and
    the row's `solution` cut to the steps left (what a completion now has to write); see DataArgs.solution_prefix.

    >>> import datasets
    >>> rows = datasets.Dataset.from_list([{"prompt": "1+2+3=", "solution": "3;6"}, {"prompt": "4+5=", "solution": "9"}])
    >>> [(r["prompt"], r["solution"]) for r in solution_prefixes(rows, 0.5, ";")]
    [('1+2+3=3;', '6'), ('4+5=', '9')]
    """
    from harness.rewards.steps import split_steps

    if "solution" not in rows.column_names:
        raise ValueError("data_args.solution_prefix: the dataset's rows carry no reference solution "
                         "(a toy scratchpad world, or a hub dataset with a solution_field)")  # fmt: skip

    def move(row: dict) -> dict:
        steps = split_steps(row["solution"], separator or "\n\n")
        k = min(int(share * len(steps)), len(steps) - 1)
        return {"prompt": row["prompt"] + "".join(steps[:k]), "solution": "".join(steps[k:])}

    return rows.map(move)
