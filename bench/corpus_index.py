"""How fast the retrieval environment's corpus index builds and answers, and how much memory the build holds, on a
synthetic Wikipedia-like corpus (passages of about 100 words drawn from a Zipf vocabulary).

    python bench/corpus_index.py                        # 200,000 passages
    python bench/corpus_index.py --docs 1000000         # closer to a dump's proportions

Rows: the build (harness.environments.corpus_index.build_index, its default chunk) in documents per second and its
peak resident memory over the process's start (ru_maxrss), the folder's size on disk; then queries of 3 words on
the memory-mapped index (open_index), in a fresh process, as a rollout worker opens it: the first query (cold
page cache for the arrays it touches) and the median of the rest. Numbers go to `--out` as JSON and to stdout; a
21M-passage dump's build time is the first row's rate scaled, the vocabulary of a real dump being larger.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

QUERY = """
import json, sys, time
from harness.environments.corpus_index import open_index
t0 = time.perf_counter(); index = open_index(sys.argv[1]); opened = time.perf_counter() - t0
times = []
for q in json.loads(sys.argv[2]):
    t = time.perf_counter(); index.search(q, 3); times.append(time.perf_counter() - t)
print(json.dumps({"open_s": opened, "times": times}))
"""


def passages(n: int, vocabulary: int, length: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        ranks = np.minimum(rng.zipf(1.15, size=length), vocabulary)
        yield " ".join(f"w{r}" for r in ranks.tolist())


def main() -> int:
    from harness.environments.corpus_index import build_index

    p = argparse.ArgumentParser()
    p.add_argument("--docs", type=int, default=200_000)
    p.add_argument("--vocabulary", type=int, default=500_000)
    p.add_argument("--length", type=int, default=100)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "index"
        start = time.perf_counter()
        info = build_index(passages(a.docs, a.vocabulary, a.length, 0), out, log=lambda m: print(m, flush=True))
        seconds = time.perf_counter() - start
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        disk_mb = sum(f.stat().st_size for f in out.iterdir()) / 2**20
        rng = np.random.default_rng(1)
        queries = [" ".join(f"w{r}" for r in np.minimum(rng.zipf(1.15, size=3), a.vocabulary).tolist())
                   for _ in range(a.queries)]  # fmt: skip
        run = subprocess.run([sys.executable, "-c", QUERY, str(out), json.dumps(queries)], capture_output=True,
                             text=True, check=True)  # fmt: skip
        timing = json.loads(run.stdout)
    rows = {
        "documents": info["documents"], "words": info["words"], "postings": info["postings"],
        "build_s": round(seconds, 1), "build_docs_per_s": round(a.docs / seconds), "build_peak_rss_mb": round(peak_mb),
        "index_mb": round(disk_mb, 1), "open_ms": round(1000 * timing["open_s"], 2),
        "first_query_ms": round(1000 * timing["times"][0], 2),
        "median_query_ms": round(1000 * statistics.median(timing["times"][1:]), 2),
    }  # fmt: skip
    print(json.dumps(rows, indent=1))
    if a.out:
        a.out.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
