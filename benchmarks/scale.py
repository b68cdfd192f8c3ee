"""The store at scale: N users x 20 documents, on SQLite and on Postgres in the same run.

For each backend and each N (a fresh store each time):
- ingest: every user's documents and their vectors, one transaction per 50 users (1,000
  documents); documents per second, vectors included;
- search: one user's search as a cold index does it: read the user's vectors from the
  store (scoped by user in the query) and score them exactly in numpy, top 5; p50 / p99
  over ``--queries`` random users;
- delete-user: the whole forgetting path of the store (rows, files, then the scrub: SQLite
  VACUUM + checkpoint, Postgres VACUUM FULL of the touched tables); median of 3 users.

The embedder is a cheap deterministic one (a seeded random unit vector per text, 64-d),
so the figures measure the store, not a model. The Postgres server is a fresh cluster of
Debian's binaries (tests/postgres_server.py) with ``fsync=on``, on this same machine over
loopback TCP; SQLite is the embedded file (WAL, synchronous=NORMAL).

    PYTHONPATH=src:. python benchmarks/scale.py --users 1000 10000
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pgen.context.base import ContextStore
from pgen.context.postgres import PostgresStore
from pgen.context.records import Document
from pgen.context.sqlite import SQLiteStore

DOCS = 20
DIM = 64
MODEL = "hash-embedder#1"
WORDS = [
    "hike",
    "trail",
    "boots",
    "battery",
    "screen",
    "sound",
    "review",
    "movie",
    "plot",
    "actor",
    "tent",
    "stove",
]


def embed(text: str) -> np.ndarray:
    """Deterministic, cheap: a unit vector seeded by the text's CRC32."""
    vector = np.random.default_rng(zlib.crc32(text.encode())).standard_normal(DIM)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def documents(user: int) -> list[Document]:
    rng = random.Random(user)
    return [
        Document(
            user_id=f"user{user:06d}",
            doc_id=f"d{k}",
            text=" ".join(rng.choice(WORDS) for _ in range(30)) + f" #{user}-{k}",
        )
        for k in range(DOCS)
    ]


def ingest(store: ContextStore, users: int) -> float:
    """Documents per second, vectors included: one transaction per 50 users (both backends
    let calls of one thread join an open transaction)."""
    vectors = {}  # computed before the clock starts: the store is measured, not the hash
    for user in range(users):
        vectors[user] = [(d.doc_id, d.content_hash, embed(d.text)) for d in documents(user)]
    start = time.perf_counter()
    for first in range(0, users, 50):
        batch = range(first, min(users, first + 50))
        with store.transaction():  # type: ignore[attr-defined]
            store.add([doc for user in batch for doc in documents(user)])
            for user in batch:
                store.put_embeddings(f"user{user:06d}", MODEL, vectors[user])
    return users * DOCS / (time.perf_counter() - start)


def search(store: ContextStore, user: str, query: np.ndarray, k: int = 5) -> list[str]:
    found = store.embeddings(user, MODEL, DIM)
    ids = list(found)
    matrix = np.stack([found[i][1] for i in ids])
    scores = matrix @ query
    return [ids[i] for i in np.argsort(-scores)[:k]]


def measure(store: ContextStore, users: int, queries: int) -> dict[str, float]:
    rate = ingest(store, users)
    rng = random.Random(7)
    times = []
    for _ in range(queries):
        user = f"user{rng.randrange(users):06d}"
        start = time.perf_counter()
        assert len(search(store, user, embed("boots for the trail"))) == 5
        times.append(time.perf_counter() - start)
    times.sort()
    deletes = []
    for user in (1, users // 2, users - 2):
        start = time.perf_counter()
        store.delete_user(f"user{user:06d}")
        deletes.append(time.perf_counter() - start)
    return {
        "rows_s": rate,
        "p50_ms": 1000 * times[len(times) // 2],
        "p99_ms": 1000 * times[min(len(times) - 1, int(len(times) * 0.99))],
        "delete_s": statistics.median(deletes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"])
    args = parser.parse_args()
    from tests.postgres_server import PostgresServer

    server = PostgresServer(fsync=True)
    server.start()
    work = Path(tempfile.mkdtemp(prefix="pgen-scale-"))
    openers: dict[str, Callable[[int], ContextStore]] = {
        "sqlite": lambda n: SQLiteStore(work / f"s{n}.sqlite"),
        "postgres": lambda n: PostgresStore(
            server.url(server.create_database(f"scale{n}")), artifacts_root=work / f"a{n}"
        ),
    }
    print(f"machine: {os.cpu_count()} cores (shared), 1 client thread; {DOCS} docs/user, {DIM}-d")
    print("| backend | users | ingest docs/s | search p50 ms | search p99 ms | delete-user s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    try:
        for users in args.users:
            for name in args.backends:
                store = openers[name](users)
                try:
                    row = measure(store, users, args.queries)
                finally:
                    store.close()
                print(
                    f"| {name} | {users:,} | {row['rows_s']:,.0f} | {row['p50_ms']:.2f} | "
                    f"{row['p99_ms']:.2f} | {row['delete_s']:.2f} |",
                    flush=True,
                )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
