"""Answers an evaluation has generated, kept on disk so a requeued or restarted evaluation resumes.

lm-eval hands the model all requests of one kind at once (each question `n_samples` times in a row).
`answer_resumably` routes them through the model a chunk at a time and commits each chunk's answers to
a SQLite file in the evaluation's folder before starting the next, so a killed job loses at most one
chunk; the next attempt reads the committed chunks back and generates only the rest. lm-eval's own
`use_cache` cannot do this: it never caches sampled generation (identical repeats would share one
answer), and it keys answers by request alone, so a changed model or seed would read stale ones.

Here a chunk is keyed by its position and the digest of its requests, and the whole file by `key`
(the model's identity and the evaluation protocol: another key empties it). Each chunk is sampled with
the torch seed `chunk_seed(seed, i)`, so its answers depend on its own requests only, not on which
chunks an earlier attempt finished: with transformers, a resumed evaluation returns exactly the samples
of an uninterrupted one. vLLM draws from its engine's own generator (not reseeded here), so there a
resumed evaluation's later chunks are other samples of the same protocol (vLLM runs are not
bit-reproducible across batch schedules anyway).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import sqlite3
from pathlib import Path

METHODS = ("generate_until", "loglikelihood", "loglikelihood_rolling")
"""lm-eval's request kinds (the LM methods wrapped)."""


def cache_file(out_dir: Path, rank: int = 0) -> Path:
    """The answer cache of the evaluation writing to `out_dir` (one per process of a data-parallel model)."""
    return Path(out_dir) / f"answers.rank{rank}.sqlite"


def chunk_seed(seed: int, i: int) -> int:
    """The torch seed chunk `i` is sampled with: `seed` itself for the first (an evaluation of one chunk
    samples exactly as before chunking), a hash of both for the others.

    >>> chunk_seed(3, 0), chunk_seed(3, 1) == chunk_seed(3, 1), chunk_seed(3, 1) != chunk_seed(4, 1)
    (3, True, True)
    """
    if i == 0:
        return seed
    return int.from_bytes(hashlib.sha256(f"{seed}/{i}".encode()).digest()[:8], "little") >> 1


class AnswerCache:
    """Chunks of answers in a SQLite file, each committed on its own (a kill mid-way keeps the finished ones)."""

    def __init__(self, path: Path, key: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=60)
        with self.db:
            self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT)")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS chunks (method TEXT, idx INTEGER, digest TEXT, n INTEGER, answers BLOB, "
                "PRIMARY KEY (method, idx))"
            )
            stored = self.db.execute("SELECT key FROM meta").fetchone()
            if stored is None or stored[0] != key:  # another model or protocol: nothing here is reusable
                self.db.execute("DELETE FROM chunks")
                self.db.execute("DELETE FROM meta")
                self.db.execute("INSERT INTO meta VALUES (?)", (key,))

    def get(self, method: str, idx: int, digest: str) -> list | None:
        row = self.db.execute(
            "SELECT answers FROM chunks WHERE method = ? AND idx = ? AND digest = ?", (method, idx, digest)
        ).fetchone()
        return pickle.loads(row[0]) if row else None

    def put(self, method: str, idx: int, digest: str, answers: list) -> None:
        with self.db:  # one transaction per chunk: committed before the next chunk starts
            self.db.execute(
                "INSERT OR REPLACE INTO chunks VALUES (?, ?, ?, ?, ?)",
                (method, idx, digest, len(answers), pickle.dumps(answers)),
            )

    def remove(self) -> None:
        """Delete the file (the evaluation is complete: its answers are in samples.jsonl)."""
        self.db.close()
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)


def answered(path: Path, timeout: float = 60.0) -> int:
    """How many requests the cache at `path` holds answers for (0 when there is none, or when it stays locked
    by its writer for `timeout` seconds)."""
    if not Path(path).is_file():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)
    try:
        return db.execute("SELECT COALESCE(SUM(n), 0) FROM chunks").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet, or locked
        return 0
    finally:
        db.close()


def digest(method: str, requests: list) -> str:
    """What a chunk asks: its requests' arguments (prompt, generation settings), in order."""
    text = json.dumps([method] + [list(r.args) for r in requests], default=repr, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def answer_resumably(lm, cache: AnswerCache, seed: int, chunk: int):
    """Make `lm`'s request methods answer through `cache`, `chunk` requests at a time (returns `lm`).

    Each call prints how many requests it answered from the cache and how many it generated. A model split
    over several processes (lm-eval's data parallelism) is left as it is: its methods meet in collectives,
    which chunks skipped on one process only would leave waiting.
    """
    import torch

    if getattr(lm, "world_size", 1) > 1:
        print(f"answers are not kept across attempts: the model runs in {lm.world_size} processes", flush=True)
        return lm

    def wrap(method: str):
        inner = getattr(lm, method)

        def answer(requests, *args, **kwargs):
            out, reused = [], 0
            for i, start in enumerate(range(0, len(requests), chunk)):
                part = requests[start : start + chunk]
                key = digest(method, part)
                got = cache.get(method, i, key)
                if got is None:
                    torch.manual_seed(chunk_seed(seed, i))
                    got = list(inner(part, *args, **kwargs))
                    cache.put(method, i, key, got)
                else:
                    reused += len(part)
                out += got
            print(f"{method}: {len(requests)} requests, {reused} answered by an earlier attempt "
                  f"(from {cache.path.name}), {len(requests) - reused} generated now", flush=True)  # fmt: skip
            return out

        return answer

    for method in METHODS:
        setattr(lm, method, wrap(method))  # on the instance: lm-eval still sees the model it built
    return lm
