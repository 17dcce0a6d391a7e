"""Corpora at paper scale: the documents a `retrieval` environment searches (a Wikipedia dump of millions of passages),
fetched and indexed on the head node, read memory-mapped on the compute nodes.

    configs/datasets/<questions>.yaml   source: hub | url, ..., corpus: <corpus>
    configs/datasets/<corpus>.yaml      source: url, url: <one .jsonl(.gz) or .parquet file>, sha256, text_fields

`harness fetch` downloads the corpus file like any pinned file, then builds its BM25 index
(harness/environments/corpus_index.py) in the hub cache under indexes/<sha256>-<fields>/, before it writes the
corpus's marker: a job that waits for the marker finds the index finished. An index already built from the same
file and fields is kept (a second fetch reads nothing). Every rank of a training job opens the same folder
memory-mapped (harness.offline.offline_stage hands it to the stage as `StageJob.corpus`), so a node holds one copy of it
in its page cache, and the host memory plan counts none of it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from harness import files
from harness.config.components import DatasetConfig
from harness.config.plain import fingerprint


def index_dir(cfg: DatasetConfig, root: Path) -> Path:
    """Where the corpus's index lies in the hub cache `root` (by the file's digest and the text columns)."""
    return Path(root) / "indexes" / f"{cfg.sha256}-{fingerprint(list(cfg.text_fields or []))}"


def build(cfg: DatasetConfig, root: Path, log: Callable[[str], None] = print) -> Path:
    """The corpus's index, built from its fetched file unless a finished one is there; KeyError names a missing
    column (with the file and line)."""
    from harness.environments.corpus_index import DONE, build_index, is_index, read_corpus

    out = index_dir(cfg, root)
    if is_index(out):
        log(f"index {out}: built before ({json.loads((out / DONE).read_text())['documents']:,} documents)")
        return out
    corpus = files.local_file(root, cfg.url, cfg.sha256)
    source = {"url": cfg.url, "sha256": cfg.sha256, "text_fields": list(cfg.text_fields or [])}
    log(f"indexing {corpus} (columns {', '.join(cfg.text_fields or [])}) into {out}")
    build_index(read_corpus(corpus, list(cfg.text_fields or [])), out, source=source, log=log)
    return out
