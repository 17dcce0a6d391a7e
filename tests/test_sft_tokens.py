"""The sft stage trains on the tokens the model meets: the prompt's own, then the completion's (not the joined
text's, whose tokens may merge across the boundary)."""

from __future__ import annotations

import datasets

from harness.config.schema import Stage
from harness.stages.sft import tokenized_apart
from harness.world.splits import read_split
from harness.world.tokenizer import train_tokenizer
from tests.conftest import build_trainer


def test_a_tool_call_after_the_prompt_is_trained_as_its_own_tokens(tmp_path):
    """A calculator-like corpus teaches BPE to merge `=<`: joined, the prompt's `=` would vanish into the
    completion's first token; apart, the training context ends on the prompt's own `=`."""
    from transformers import AutoTokenizer

    train_tokenizer(["12+34=<12+34>=46;46", "5+6=11"] * 200, tmp_path / "tok", vocab_size=280)
    tok = AutoTokenizer.from_pretrained(tmp_path / "tok")
    prompt, completion = "12+34=", "<12+34>=46;46"
    joined = tok(prompt + completion)["input_ids"]
    own = tok(prompt)["input_ids"]
    assert joined[: len(own)] != own  # the merge this guards against happens with this tokenizer
    rows = tokenized_apart(datasets.Dataset.from_list([{"prompt": prompt, "completion": completion}]), tok)
    assert rows.column_names == ["input_ids", "completion_mask"]
    ids, mask = rows[0]["input_ids"], rows[0]["completion_mask"]
    rest = tok(completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert ids == own + rest
    assert mask == [0] * len(own) + [1] * len(rest)


def test_the_sft_trainer_masks_exactly_the_prompt_tokens(world, tmp_path):
    root, _ = world
    st = Stage(kind="sft", data="train", rewards=[], args=dict(max_steps=1, per_device_train_batch_size=4,
                                                               save_steps=100))  # fmt: skip
    split = read_split(root / "data", "train")
    trainer = build_trainer(st, str(root / "model"), datasets.Dataset.from_list(split), 0, tmp_path)
    tok = trainer.processing_class
    for row, example in zip(split[:4], trainer.train_dataset, strict=False):
        prompt = tok(row["prompt"])["input_ids"]
        target = tok(row.get("solution") or row["answer"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        assert example["input_ids"] == prompt + target
        assert example["labels"] == [-100] * len(prompt) + target
