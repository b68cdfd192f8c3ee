"""Threads writing different users at once lose no write; readers never see another
user's rows."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from pgen.context.base import ContextStore
from pgen.context.records import Document

USERS = [f"user{k}" for k in range(6)]
BATCHES = 8


def test_writers_of_different_users_lose_nothing_and_readers_stay_scoped(
    store: ContextStore,
) -> None:
    stop = threading.Event()
    leaks: list[str] = []

    def write(user: str) -> None:
        for batch in range(BATCHES):
            store.add(
                [
                    Document(user_id=user, doc_id=f"b{batch}-{k}", text=f"{user} text {k}")
                    for k in range(5)
                ]
            )
            store.save_output(user, "i", "s", f"{user} output {batch}", {}, media=[f"{user}.png"])

    def read(user: str) -> None:
        while not stop.is_set():
            seen = [d.user_id for d in store.documents(user)]
            seen += [o.user_id for o in store.outputs(user)]
            seen += [p.split(".")[0] for o in store.outputs(user) for p in o.media]
            leaks.extend(other for other in seen if other != user)

    readers = [threading.Thread(target=read, args=(user,)) for user in USERS[:3]]
    for reader in readers:
        reader.start()
    try:
        with ThreadPoolExecutor(len(USERS)) as pool:
            list(pool.map(write, USERS))
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert leaks == []
    for user in USERS:
        assert len(store.documents(user)) == BATCHES * 5
        assert len(store.outputs(user)) == BATCHES
        assert store.revision(user).number == BATCHES * 5
