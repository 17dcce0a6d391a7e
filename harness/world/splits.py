"""A generated dataset on disk: one `<split>.jsonl` per split, whatever generator made the rows."""

from __future__ import annotations

import json
from pathlib import Path

SPLITS = ("pretrain", "train", "pool", "test")
"""pretrain (the toy model's corpus), train (labeled), pool (labels never shown to label-free rewards), test."""


def write_rows(splits: dict[str, list[dict]], out_dir: Path) -> None:
    """One `<split>.jsonl` per split."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, rows in splits.items():
        with open(out_dir / f"{name}.jsonl", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)


def read_split(data_dir: Path, split: str) -> list[dict]:
    with open(Path(data_dir) / f"{split}.jsonl") as f:
        return [json.loads(line) for line in f]
