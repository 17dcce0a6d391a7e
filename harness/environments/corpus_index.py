"""A BM25 index of a corpus too large for memory (a Wikipedia dump: millions of passages), built once on the head
node (`harness fetch` builds one for every corpus it fetches, harness/corpora.py; by hand: `python -m
harness.environments.corpus_index CORPUS OUT --text COLUMN`) and opened memory-mapped by each rollout worker: the
processes of a node share one copy through the page cache, and none of them builds anything.

An index is a folder of flat arrays, the ones harness.environments.bm25.BM25 searches in memory:

    vocabulary.bin, vocabulary_offsets.npy   the words, sorted, as ASCII bytes end to end, and where each starts
    starts.npy                               word w's postings are starts[w]:starts[w + 1]
    doc_ids.npy, counts.npy                  per posting: the document and the word's occurrences in it
    lengths.npy, idf.npy                     words per document; idf per word
    texts.bin, text_offsets.npy              the documents' texts (UTF-8), as the environment shows them
    index.json                               sizes and the corpus read (path, size, text fields); written last, so
                                             a folder without it is an unfinished build

The build reads the corpus once, `chunk` documents at a time: each chunk's (word, document, count) triples go to a
scratch file, and a second pass scatters them into the posting arrays in document order. Memory holds the
vocabulary and one chunk, never the whole collection. The result is the same index `BM25(texts)` builds in memory
(tests/test_corpus_index.py compares their rankings and scores).
"""

from __future__ import annotations

import gzip
import json
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from harness.environments.bm25 import BM25, idf, words

FORMAT = 1
DONE = "index.json"


class Strings(Sequence):
    """Strings stored end to end in a memory-mapped file, found by their offsets (offsets[i]:offsets[i + 1])."""

    def __init__(self, blob: Path, offsets: Path) -> None:
        self.offsets = np.load(offsets, mmap_mode="r")
        size = int(self.offsets[-1])
        self.blob = np.memmap(blob, dtype=np.uint8, mode="r", shape=(size,)) if size else np.zeros(0, np.uint8)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.blob[int(self.offsets[i]) : int(self.offsets[i + 1])].tobytes().decode()


def read_corpus(path: Path, text: Sequence[str]) -> Iterator[str]:
    """The documents of a corpus file, one text each: the `text` columns of each row joined by a newline (a
    title and its passage). JSON lines (.jsonl, .jsonl.gz) or Parquet."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(columns=list(text)):
            columns = [batch.column(c).to_pylist() for c in text]
            for values in zip(*columns, strict=True):
                yield "\n".join(str(v) for v in values)
        return
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            missing = [c for c in text if c not in row]
            if missing:
                raise KeyError(f"{path}, line {n}: no column {missing[0]!r} (it has {sorted(row)})")
            yield "\n".join(str(row[c]) for c in text)


def build_index(texts: Iterator[str], out: Path, *, chunk: int = 200_000, source: dict | None = None,
                log: Callable[[str], None] = print) -> dict:  # fmt: skip
    """Index the documents `texts` into the folder `out` (replaced when it exists); returns index.json's content."""
    out = Path(out)
    work = out.with_name(out.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    (work / "chunks").mkdir(parents=True)
    vocabulary: dict[str, int] = {}  # word -> id in order of first sight
    holding = np.zeros(0, np.int64)  # per word id: documents holding it
    lengths: list[np.ndarray] = []
    text_offsets, chunks, n_docs, started = [0], 0, 0, time.time()
    with open(work / "texts.bin", "wb") as texts_out:
        batch: list[str] = []
        for text in texts:
            batch.append(text)
            if len(batch) == chunk:
                holding = _index_chunk(batch, n_docs, vocabulary, holding, lengths, text_offsets, texts_out,
                                       work / "chunks" / f"{chunks}.npz")  # fmt: skip
                n_docs, chunks, batch = n_docs + len(batch), chunks + 1, []
                rate = n_docs / max(time.time() - started, 1e-9)
                log(f"indexed {n_docs:,} documents, {len(vocabulary):,} words ({rate:,.0f} documents/s)")
        if batch:
            holding = _index_chunk(batch, n_docs, vocabulary, holding, lengths, text_offsets, texts_out,
                                   work / "chunks" / f"{chunks}.npz")  # fmt: skip
            n_docs, chunks = n_docs + len(batch), chunks + 1
    order = sorted(vocabulary, key=vocabulary.__getitem__)  # words by id
    alphabetical = np.argsort(np.array(order, dtype=object), kind="stable") if order else np.zeros(0, np.int64)
    new_id = np.empty(len(order), np.int64)
    new_id[alphabetical] = np.arange(len(order))
    sorted_words = [order[i] for i in alphabetical.tolist()]
    _write_strings(sorted_words, work / "vocabulary.bin", work / "vocabulary_offsets.npy")
    holding = holding[alphabetical]
    starts = np.concatenate([[0], np.cumsum(holding)]).astype(np.int64)
    total = int(starts[-1])
    id_type = np.int32 if n_docs < 2**31 else np.int64
    doc_ids = np.lib.format.open_memmap(work / "doc_ids.npy", mode="w+", dtype=id_type, shape=(total,))
    counts = np.lib.format.open_memmap(work / "counts.npy", mode="w+", dtype=np.int32, shape=(total,))
    cursor = starts[:-1].copy()
    for c in range(chunks):  # chunks in document order: each word's postings come out with documents ascending
        with np.load(work / "chunks" / f"{c}.npz") as z:
            word, doc, count = new_id[z["word"]], z["doc"], z["count"]
        order_in_chunk = np.argsort(word, kind="stable")  # stable: documents stay ascending within a word
        word, doc, count = word[order_in_chunk], doc[order_in_chunk], count[order_in_chunk]
        first, size = np.unique(word, return_index=True, return_counts=True)[1:]
        where = cursor[word] + np.arange(len(word)) - np.repeat(first, size)
        doc_ids[where], counts[where] = doc, count
        cursor[word[first]] += size
    doc_ids.flush(), counts.flush()
    del doc_ids, counts
    all_lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    np.save(work / "starts.npy", starts)
    np.save(work / "lengths.npy", all_lengths.astype(np.int32))
    np.save(work / "idf.npy", idf(n_docs, holding))
    np.save(work / "text_offsets.npy", np.array(text_offsets, dtype=np.int64))
    shutil.rmtree(work / "chunks")
    info = {"format": FORMAT, "documents": n_docs, "words": len(sorted_words), "postings": total,
            "source": source or {}, "seconds": round(time.time() - started, 1)}  # fmt: skip
    (work / DONE).write_text(json.dumps(info, indent=1) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    work.rename(out)
    log(f"index of {n_docs:,} documents, {len(sorted_words):,} words, {total:,} postings written to {out}")
    return info


def _index_chunk(batch, first_doc, vocabulary, holding, lengths, text_offsets, texts_out, scratch) -> np.ndarray:
    word_ids, doc_ids, counts, chunk_lengths = [], [], [], []
    for i, text in enumerate(batch):
        encoded = text.encode()
        texts_out.write(encoded)
        text_offsets.append(text_offsets[-1] + len(encoded))
        c = Counter(words(text))
        chunk_lengths.append(sum(c.values()))
        for w, f in c.items():
            word_ids.append(vocabulary.setdefault(w, len(vocabulary)))
            doc_ids.append(first_doc + i)
            counts.append(f)
    word = np.array(word_ids, dtype=np.int64)
    np.savez(scratch, word=word, doc=np.array(doc_ids, dtype=np.int64), count=np.array(counts, dtype=np.int32))
    lengths.append(np.array(chunk_lengths, dtype=np.int64))
    grown = np.zeros(len(vocabulary), np.int64)
    grown[: len(holding)] = holding
    return grown + np.bincount(word, minlength=len(vocabulary))


def _write_strings(strings: list[str], blob: Path, offsets: Path) -> None:
    encoded = [s.encode() for s in strings]
    blob.write_bytes(b"".join(encoded))
    np.save(offsets, np.concatenate([[0], np.cumsum([len(e) for e in encoded], dtype=np.int64)]).astype(np.int64))


def is_index(folder: Path) -> bool:
    return (Path(folder) / DONE).is_file()


def open_index(folder: Path, k1: float = 1.2, b: float = 0.75) -> BM25:
    """The index in `folder`, memory-mapped (nothing is read until searched), searched as BM25 with k1 and b."""
    folder = Path(folder)
    if not is_index(folder):
        raise FileNotFoundError(f"{folder} holds no finished index ({DONE} missing): run `harness fetch` on the "
                                "head node (it builds the index of every corpus it fetches)")  # fmt: skip
    info = json.loads((folder / DONE).read_text())
    if info.get("format") != FORMAT:
        raise ValueError(f"{folder}: index format {info.get('format')}, this harness reads {FORMAT}: rebuild it")
    arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in
              ("starts", "doc_ids", "counts", "lengths", "idf")}  # fmt: skip
    vocabulary = Strings(folder / "vocabulary.bin", folder / "vocabulary_offsets.npy")
    texts = Strings(folder / "texts.bin", folder / "text_offsets.npy")
    return BM25(texts, k1, b, arrays=arrays, vocabulary=vocabulary)


def main(argv: list[str] | None = None) -> int:
    """`python -m harness.environments.corpus_index CORPUS OUT [--text COL ...] [--chunk N]`."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m harness.environments.corpus_index")
    p.add_argument("corpus", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--text", nargs="+", default=["text"], help="the column(s) of a document's text")
    p.add_argument("--chunk", type=int, default=200_000)
    a = p.parse_args(argv)
    source = {"path": str(a.corpus), "bytes": a.corpus.stat().st_size, "text": a.text}
    build_index(read_corpus(a.corpus, a.text), a.out, chunk=a.chunk, source=source,
                log=lambda m: print(m, file=sys.stderr, flush=True))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
