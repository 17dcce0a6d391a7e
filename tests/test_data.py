"""Stage data (harness.stages.data) and the scratchpad toy world (harness.world.arithmetic), checked by hand on tiny
splits."""

from __future__ import annotations

from collections import Counter

import pytest

from harness.config.components import DatasetConfig
from harness.config.stage import DataArgs
from harness.grader import extract_answer
from harness.stages.data import reword, stage_rows
from harness.stages.samplers import PairedRepeatSampler
from harness.world.arithmetic import ArithmeticSpec, make_splits, write_splits
from harness.world.splits import read_split

SPEC = ArithmeticSpec(min_operands=3, max_operands=3, max_value=9, n_train=20, n_pool=10, n_test=5, n_pretrain=5)


def _world(tmp_path, **spec) -> tuple[DatasetConfig, object]:
    cfg = DatasetConfig(source="toy-arithmetic", arithmetic=ArithmeticSpec(**(vars(SPEC) | spec)))
    write_splits(cfg.arithmetic, tmp_path)
    return cfg, tmp_path


def _value(prompt: str) -> int:
    return eval(prompt.rstrip("="))  # noqa: S307 (test data: digits and + - * only)


# ----------------------------------------------------------------------------- splits


def test_train_rows_keep_their_columns(tmp_path):
    cfg, d = _world(tmp_path)
    ds = stage_rows(cfg, "train", DataArgs(), d)
    assert ds.column_names == ["id", "prompt", "answer", "solution"]
    assert ds.to_list() == read_split(d, "train")


def test_pool_never_has_answers(tmp_path):
    cfg, d = _world(tmp_path, scratchpad=True)
    for args in (DataArgs(), DataArgs(paraphrase=True, repeat=2, limit=3)):
        ds = stage_rows(cfg, "pool", args, d)
        assert "answer" not in ds.column_names and "solution" not in ds.column_names
    with pytest.raises(ValueError, match="data_args.label_noise"):
        stage_rows(cfg, "pool", DataArgs(label_noise=0.5), d)


def test_mixture_columns_and_unique_ids(tmp_path):
    cfg, d = _world(tmp_path)
    ds = stage_rows(cfg, "mixture", DataArgs(unlabeled=4), d)
    assert ds.column_names == ["id", "prompt", "answer", "solution", "labeled"]
    rows = ds.to_list()
    assert [r["labeled"] for r in rows] == [True] * 20 + [False] * 4
    assert rows[:20] == [r | {"labeled": True} for r in read_split(d, "train")]
    pool = read_split(d, "pool")[:4]
    assert [r["id"] for r in rows[20:]] == [100, 101, 102, 103]  # 100: the power of ten above train ids 0..19
    assert [r["prompt"] for r in rows[20:]] == [r["prompt"] for r in pool]
    assert all(r["answer"] is None and r["solution"] is None for r in rows[20:])
    assert len(set(ds["id"])) == len(ds)
    assert len(stage_rows(cfg, "mixture", DataArgs(), d)) == 30  # unlabeled None: the whole pool


def test_unlabeled_only_for_mixture(tmp_path):
    cfg, d = _world(tmp_path)
    with pytest.raises(ValueError, match="data_args.unlabeled"):
        stage_rows(cfg, "train", DataArgs(unlabeled=3), d)


def test_limit_keeps_the_first_rows(tmp_path):
    cfg, d = _world(tmp_path)
    ds = stage_rows(cfg, "train", DataArgs(limit=3), d)
    assert ds.to_list() == read_split(d, "train")[:3]
    # on a mixture, limit counts the labeled rows only
    assert stage_rows(cfg, "mixture", DataArgs(limit=3, unlabeled=5), d)["labeled"] == [True] * 3 + [False] * 5


# ----------------------------------------------------------------------------- label noise


def test_label_noise_fraction_determinism_and_wrongness(tmp_path):
    cfg, d = _world(tmp_path, scratchpad=True)
    clean = read_split(d, "train")
    rows = stage_rows(cfg, "train", DataArgs(label_noise=0.25, seed=3), d).to_list()
    assert rows == stage_rows(cfg, "train", DataArgs(label_noise=0.25, seed=3), d).to_list()
    assert rows != stage_rows(cfg, "train", DataArgs(label_noise=0.25, seed=4), d).to_list()
    assert sum(r["noisy"] for r in rows) == 5  # 0.25 of 20
    for r, c in zip(rows, clean, strict=True):
        assert (r["answer"] != c["answer"]) == r["noisy"]
        if r["noisy"]:
            assert 1 <= abs(int(r["answer"]) - _value(r["prompt"])) <= 3
            steps = r["solution"].split(";")
            assert steps[:-1] == c["solution"].split(";")[:-1] and steps[-1] == r["answer"]
        else:
            assert r == c | {"noisy": False}


def test_label_noise_touches_labeled_rows_only(tmp_path):
    cfg, d = _world(tmp_path)
    rows = stage_rows(cfg, "mixture", DataArgs(label_noise=1.0), d).to_list()
    assert all(r["noisy"] == r["labeled"] for r in rows)
    assert all(r["answer"] is None for r in rows if not r["labeled"])


# ----------------------------------------------------------------------------- paraphrase and repeat


def test_reword_is_a_correct_rewording():
    assert reword("12+34=") == "34+12="
    assert reword("1+2+3=") == "3+2+1="
    for prompt in ("9-4+2=", "9+4-2=", "2+3*4=", "7-1-5=", "2*3-4*5+6="):
        assert _value(reword(prompt)) == _value(prompt) and not reword(prompt).startswith("-")


def test_paraphrase_twins(tmp_path):
    cfg, d = _world(tmp_path, scratchpad=True)
    rows = stage_rows(cfg, "train", DataArgs(paraphrase=True), d).to_list()
    assert len(rows) == 40 and len({r["id"] for r in rows}) == 40
    for orig, twin in zip(rows[::2], rows[1::2], strict=True):
        assert (orig["view"], twin["view"]) == (0, 1) and orig["pair"] == twin["pair"] == orig["id"]
        assert twin["id"] == 100 + orig["id"]
        a, b, c = orig["prompt"].rstrip("=").split("+")
        assert twin["prompt"] == f"{c}+{b}+{a}="
        assert _value(twin["prompt"]) == _value(orig["prompt"]) == int(twin["answer"])
        assert twin["solution"] == f"{int(c) + int(b)};{twin['answer']}"


def test_paraphrase_refusals(tmp_path):
    hub = DatasetConfig(source="hub", hub_path="org/some-math")
    with pytest.raises(ValueError, match="data_args.paraphrase: hub dataset org/some-math must ship"):
        stage_rows(hub, "train", DataArgs(paraphrase=True), None)
    cfg, d = _world(tmp_path, min_operands=2, operators=["+", "-"])
    with pytest.raises(ValueError, match="two-term difference"):
        stage_rows(cfg, "train", DataArgs(paraphrase=True), d)


def test_repeat_whole_copies_same_ids(tmp_path):
    cfg, d = _world(tmp_path)
    rows = stage_rows(cfg, "train", DataArgs(limit=1, repeat=8), d).to_list()
    assert rows == read_split(d, "train")[:1] * 8
    paired = stage_rows(cfg, "train", DataArgs(limit=2, paraphrase=True, repeat=2), d)
    assert paired["view"] == [0, 1, 0, 1] * 2 and paired["pair"] == [0, 0, 1, 1] * 2


# ----------------------------------------------------------------------------- the paired sampler


def _chunks(seq: list[int], mini: int, batch: int, repeat: int) -> list[list[int]]:
    """Distinct indices of each chunk (of batch_size prompts) the sampler yielded."""
    distinct = seq[::mini]
    return [distinct[i : i + batch] for i in range(0, len(distinct), batch * repeat)]


def test_sampler_keeps_pairs_together_and_repeats():
    pairs = [i // 2 for i in range(20)]  # 10 pairs, laid out as add_paraphrases does
    sampler = PairedRepeatSampler(pairs, mini_repeat_count=3, batch_size=4, repeat_count=2, seed=0)
    seq = list(sampler)
    assert len(seq) == len(sampler) == (20 // 4) * 4 * 3 * 2
    assert all(seq[i : i + 3] == [seq[i]] * 3 for i in range(0, len(seq), 3))  # mini repeats are consecutive
    for chunk in _chunks(seq, 3, 4, 2):
        assert sorted(Counter(pairs[i] for i in chunk).values()) == [2, 2]  # complete pairs only
    block = seq[: 4 * 3]
    assert seq[4 * 3 : 2 * 4 * 3] == block  # each chunk repeat_count times
    assert seq == list(PairedRepeatSampler(pairs, 3, 4, 2, seed=0))
    assert seq != list(PairedRepeatSampler(pairs, 3, 4, 2, seed=1))


def test_sampler_matches_trl_without_shuffle():
    from trl.trainer.utils import RepeatSampler

    pairs = [i // 2 for i in range(14)]
    for batch in (2, 4, 6):
        ours = PairedRepeatSampler(pairs, mini_repeat_count=2, batch_size=batch, repeat_count=3, shuffle=False)
        trl = RepeatSampler(pairs, mini_repeat_count=2, batch_size=batch, repeat_count=3, shuffle=False)
        assert list(ours) == list(trl) and len(ours) == len(trl)
        shuffled = PairedRepeatSampler(pairs, mini_repeat_count=2, batch_size=batch, repeat_count=3, seed=0)
        assert len(list(shuffled)) == len(trl)


@pytest.mark.parametrize("paired", [False, True])
def test_a_sharded_sampler_set_to_a_later_epoch_draws_that_epochs_order(paired):
    """What a resumed run does: a fresh sampler, in each of two processes' shards as accelerate prepares them, set to
    epoch 2 yields the order an uninterrupted one yields in its third epoch (not its first again); the Trainer calls
    set_epoch through the prepared loader."""
    from accelerate.data_loader import prepare_data_loader
    from torch.utils.data import DataLoader

    from harness.stages.samplers import ResumableRepeatSampler

    rows = list(range(16))

    def loader(rank):
        shape = dict(mini_repeat_count=2, batch_size=4, seed=0)
        s = PairedRepeatSampler([i // 2 for i in rows], **shape) if paired else ResumableRepeatSampler(rows, **shape)
        return prepare_data_loader(DataLoader(rows, sampler=s, batch_size=4), num_processes=2, process_index=rank,
                                   put_on_device=False)  # fmt: skip

    for rank in (0, 1):
        straight, epochs = loader(rank), []
        for epoch in range(3):
            straight.set_epoch(epoch)
            epochs.append([b.tolist() for b in straight])
        assert epochs[0] != epochs[2]
        resumed = loader(rank)
        resumed.set_epoch(2)
        assert [b.tolist() for b in resumed] == epochs[2]


def test_sampler_refusals():
    with pytest.raises(ValueError, match="batch_size must be even"):
        PairedRepeatSampler([0, 0], mini_repeat_count=2, batch_size=3)
    with pytest.raises(ValueError, match="odd number of rows"):
        PairedRepeatSampler([0, 0, 1], mini_repeat_count=2, batch_size=2)


def test_sampler_on_repeated_paraphrases(tmp_path):
    cfg, d = _world(tmp_path)
    ds = stage_rows(cfg, "train", DataArgs(limit=1, paraphrase=True, repeat=4), d)
    seq = list(PairedRepeatSampler(ds["pair"], mini_repeat_count=2, batch_size=4, seed=0))
    for chunk in _chunks(seq, 2, 4, 1):
        assert sorted(ds["view"][i] for i in chunk) == [0, 0, 1, 1]


# ----------------------------------------------------------------------------- scratchpad world


def test_scratchpad_solutions_are_running_totals():
    rows = make_splits(ArithmeticSpec(**(vars(SPEC) | {"scratchpad": True})))
    assert all(r["answer"] == str(_value(r["prompt"])) for split in rows.values() for r in split)
    for r in rows["train"]:
        a, b, c = map(int, r["prompt"].rstrip("=").split("+"))
        assert r["solution"] == f"{a + b};{a + b + c}"
        assert extract_answer(r["solution"]) == r["answer"]


def test_scratchpad_subtraction_and_refusal():
    spec = ArithmeticSpec(min_operands=3, max_operands=3, max_value=9, operators=["-"], scratchpad=True,
                          n_train=5, n_pool=0, n_test=0, n_pretrain=0)  # fmt: skip
    for r in make_splits(spec)["train"]:
        a, b, c = map(int, r["prompt"].rstrip("=").split("-"))
        assert r["solution"] == f"{a - b};{a - b - c}" and extract_answer(r["solution"]) == r["answer"]
    with pytest.raises(ValueError, match="scratchpad"):
        make_splits(ArithmeticSpec(operators=["+", "*"], scratchpad=True))


def test_without_scratchpad_rows_only_gain_solution():
    rows = make_splits(SPEC)
    for split in rows.values():
        for i, r in enumerate(split):
            assert list(r) == ["id", "prompt", "answer", "solution"] and r["id"] == i
            assert r["solution"] == r["answer"] == str(_value(r["prompt"]))
    with_pad = make_splits(ArithmeticSpec(**(vars(SPEC) | {"scratchpad": True})))
    strip = lambda s: [{k: r[k] for k in ("id", "prompt", "answer")} for r in s]  # noqa: E731
    assert all(strip(rows[k]) == strip(with_pad[k]) for k in rows)  # the same problems either way


def test_tokenizer_encodes_the_separator(tmp_path):
    from transformers import AutoTokenizer

    from harness.world.tokenizer import train_tokenizer

    train_tokenizer(["12+34=46", "1+2+3=3;6"], tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    ids = tok("46;51", add_special_tokens=False)["input_ids"]
    assert len(ids) == 5 and tok.decode(ids) == "46;51" and tok.unk_token_id not in ids
    bare = tmp_path / "bare"
    train_tokenizer(["12+34=46"], bare)  # a corpus without ';' still has it: the byte alphabet is always in
    assert AutoTokenizer.from_pretrained(bare).get_vocab() == tok.get_vocab()


def test_code_and_sql_columns_are_read_as_tests_and_database(tmp_path):
    """A hub/url code dataset names its tests column, an SQL one its tables' column (code_contests, gretel)."""
    import json

    from harness.config.components import DatasetConfig
    from harness.stages.data import load_rows

    rows = [{"q": "Add the numbers.", "name": "p1", "checks": {"input": ["1 2\n"], "output": ["3\n"]},
             "ctx": "CREATE TABLE t (a INTEGER);"}]  # fmt: skip
    (tmp_path / "probs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = DatasetConfig(source="url", url="https://example.org/probs.jsonl", sha256="0" * 64, prompt_field="q",
                        answer_field="name", tests_field="checks", database_field="ctx")  # fmt: skip
    (row,) = load_rows(cfg, "train", tmp_path)
    assert row["tests"] == {"input": ["1 2\n"], "output": ["3\n"]} and row["database"] == "CREATE TABLE t (a INTEGER);"
    assert "tests" not in load_rows(DatasetConfig(source="url", url=cfg.url, sha256=cfg.sha256, prompt_field="q",
                                                  answer_field="name"), "train", tmp_path)[0]  # fmt: skip
