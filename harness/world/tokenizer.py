"""A byte-level BPE tokenizer trained on the toy corpus, digits always one token each (and, in a tool world, the
marks that end a tool call: an environment's answer then starts a token of its own, in training as in episodes)."""

from __future__ import annotations

from pathlib import Path

PAD, EOS = "<pad>", "<eos>"


def train_tokenizer(texts: list[str], out_dir: Path, vocab_size: int = 300, isolated: tuple[str, ...] = ()) -> None:
    """Train and save in the Hugging Face format (tokenizer.json + config), loadable by AutoTokenizer. Each string
    of `isolated` is always a token by itself (never merged with its neighbours)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(mark, behavior="isolated") for mark in isolated]
        + [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=EOS, bos_token=None, padding_side="left"
    )
    fast.save_pretrained(out_dir)
