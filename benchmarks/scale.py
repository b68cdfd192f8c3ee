"""The store at scale: N users x 20 documents, on SQLite and on Postgres in the same run.

For each backend and each N (a fresh store each time):
- ingest: every user's documents and their vectors, one transaction per 50 users (1,000
  documents); documents per second, vectors included;
- search: one user's search as a cold index does it: read the user's vectors from the
  store (scoped by user in the query) and score them exactly in numpy, top 5; p50 / p99
  over ``--queries`` random users;
- delete-user: the whole forgetting path of the store (rows, files, then the scrub: SQLite
  VACUUM + checkpoint, Postgres VACUUM FULL of the touched tables); median of 3 users;
- size on disk after ingest, and bytes per document (vectors included), for the estimate
  of a million users: SQLite's file and WAL after a checkpoint; Postgres's database after
  VACUUM ANALYZE, with the documents and embeddings tables' own share (heap, TOAST,
  indexes) and their indexes' part.

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


Sizer = Callable[[], tuple[int, int]]  # (bytes in all, bytes of the indexes)


def sqlite_size(path: Path) -> Sizer:
    def size() -> tuple[int, int]:
        import sqlite3

        with sqlite3.connect(path) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            try:  # the dbstat table exists where SQLite was built with it
                row = db.execute(
                    "SELECT sum(pgsize) FROM dbstat WHERE name IN "
                    "(SELECT name FROM sqlite_master WHERE type = 'index')"
                ).fetchone()
                indexes = int(row[0] or 0)
            except sqlite3.OperationalError:
                indexes = 0
        wal = path.with_name(path.name + "-wal")
        total = path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
        return total, indexes

    return size


def postgres_size(url: str) -> Sizer:
    def size() -> tuple[int, int]:
        import psycopg

        with psycopg.connect(url, autocommit=True) as db:
            db.execute("VACUUM ANALYZE")
            row = db.execute(
                "SELECT pg_database_size(current_database()), "
                "sum(pg_indexes_size(c.oid)) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1] or 0)

    return size


def measure(store: ContextStore, users: int, queries: int, size: Sizer) -> dict[str, float]:
    rate = ingest(store, users)
    total, indexes = size()
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
        "mb": total / 2**20,
        "index_mb": indexes / 2**20,
        "bytes_doc": total / (users * DOCS),
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

    def sqlite(n: int) -> tuple[ContextStore, Sizer]:
        path = work / f"s{n}.sqlite"
        return SQLiteStore(path), sqlite_size(path)

    def postgres(n: int) -> tuple[ContextStore, Sizer]:
        url = server.url(server.create_database(f"scale{n}"))
        return PostgresStore(url, artifacts_root=work / f"a{n}"), postgres_size(url)

    openers: dict[str, Callable[[int], tuple[ContextStore, Sizer]]] = {
        "sqlite": sqlite,
        "postgres": postgres,
    }
    print(f"machine: {os.cpu_count()} cores (shared), 1 client thread; {DOCS} docs/user, {DIM}-d")
    print(
        "| backend | users | ingest docs/s | search p50 ms | search p99 ms | delete-user s "
        "| size MB | of it indexes MB | bytes/doc |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    try:
        for users in args.users:
            for name in args.backends:
                store, size = openers[name](users)
                try:
                    row = measure(store, users, args.queries, size)
                finally:
                    store.close()
                print(
                    f"| {name} | {users:,} | {row['rows_s']:,.0f} | {row['p50_ms']:.2f} | "
                    f"{row['p99_ms']:.2f} | {row['delete_s']:.2f} | {row['mb']:,.0f} | "
                    f"{row['index_mb']:,.0f} | {row['bytes_doc']:,.0f} |",
                    flush=True,
                )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
