"""Per-request latency of top-5 retrieval over one user's documents, for each retriever,
against the baseline of LaMP's reference code: a rank_bm25 index built per request.

    .venv/bin/python benchmarks/retrieval.py [--sizes 100 1000 10000] [--threads 1]

Documents are synthetic, 30-80 words drawn (Zipf-distributed) from the
vocabulary of the LaMP samples in ../shared/data when present, else of the demo sample.
Indexes are warm (built once, as pgen keeps them between requests); the "update" column
is one new document added to the store and the next query answered with it indexed.
"build s" is the first request ever (dense: embedding every document), "reload ms" the
first request of a new process over the same store (the index rebuilt from stored rows and
vectors, as each `pgen generate` command does).
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from rank_bm25 import BM25Okapi

from pgen.context import Document
from pgen.context.sqlite import SQLiteStore
from pgen.demo import sample_path
from pgen.models.embedding import SentenceEmbedder
from pgen.usermodel import Retriever, Retrievers

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "lamp-samples"
K = 5


def vocabulary() -> list[str]:
    sources = sorted(SHARED.glob("*questions.json")) if SHARED.is_dir() else [sample_path()]
    words: dict[str, int] = {}
    for path in sources:
        for word in re.findall(r"[a-z]{3,}", path.read_text(encoding="utf-8").lower()):
            words[word] = words.get(word, 0) + 1
    return sorted(words, key=lambda w: -words[w])


def synthetic_documents(n: int, vocab: list[str], rng: np.random.Generator) -> list[str]:
    ranks = np.minimum(rng.zipf(1.2, size=(n, 80)), len(vocab)) - 1
    lengths = rng.integers(30, 81, size=n)
    return [" ".join(vocab[r] for r in ranks[i, : lengths[i]]) for i in range(n)]


def timed(fn: Callable[[str], object], queries: list[str], repeats: int) -> list[float]:
    """Milliseconds of each call, cycling through the queries."""
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(queries[i % len(queries)])
        times.append((time.perf_counter() - start) * 1000)
    return times


def summary(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def bench_size(
    store: SQLiteStore, embedder: SentenceEmbedder, texts: list[str], queries: list[str]
) -> list[str]:
    """Table rows for one user with ``len(texts)`` documents."""
    size = len(texts)
    user = f"user{size}"
    store.add(Document(user_id=user, doc_id=str(i), text=t) for i, t in enumerate(texts))

    def baseline(query: str) -> None:
        # LaMP's rank_profiles.py: split every document, index them and rank, per request.
        scores = BM25Okapi([t.split() for t in texts]).get_scores(query.split())
        np.argsort(-scores)[:K]

    base_median, base_p99 = summary(
        timed(baseline, queries, max(5, min(len(queries), 20_000 // size)))
    )
    retrievers = Retrievers(store, embedder=lambda: embedder)
    rows = []
    for name in ("bm25", "dense", "recency", "hybrid"):
        retriever = retrievers.get(name)
        start = time.perf_counter()
        retriever.retrieve(user, queries[0], K)  # the first request builds the index
        build_s = time.perf_counter() - start
        reload_ms = min(
            timed(
                lambda q, n=name: (
                    Retrievers(store, embedder=lambda: embedder).get(n).retrieve(user, q, K)
                ),
                queries,
                3,
            )
        )
        median, p99 = summary(
            timed(lambda q, r=retriever: r.retrieve(user, q, K), queries, len(queries))
        )

        def update(query: str, r: Retriever = retriever) -> None:
            # Query text as a new document: a fresh id each time, since queries differ.
            store.add([Document(user_id=user, doc_id=f"new-{r.name}-{query}", text=query)])
            r.retrieve(user, query, K)

        update_median, _ = summary(timed(update, queries[-10:], 10))
        rows.append(
            f"{size:>6} {name:<10} {median:>10.2f} {p99:>8.2f} {update_median:>10.2f} "
            f"{build_s:>8.2f} {reload_ms:>10.1f} {base_median:>12.2f} {base_p99:>9.2f} "
            f"{base_median / median:>8.1f}x"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    vocab = vocabulary()
    embedder = SentenceEmbedder()
    print(f"threads={args.threads}  vocabulary={len(vocab)} words  k={K}  queries={args.queries}")
    print(
        f"{'docs':>6} {'retriever':<10} {'median ms':>10} {'p99 ms':>8} {'update ms':>10} "
        f"{'build s':>8} {'reload ms':>10} {'base med ms':>12} {'base p99':>9} {'speed-up':>9}"
    )
    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteStore(Path(folder) / "bench.sqlite")
        for size in args.sizes:
            texts = synthetic_documents(size, vocab, rng)
            queries = [" ".join(rng.choice(vocab[:2000], size=6)) for _ in range(args.queries)]
            for row in bench_size(store, embedder, texts, queries):
                print(row, flush=True)


if __name__ == "__main__":
    main()
