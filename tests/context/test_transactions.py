"""Transactions and the change feed."""

from __future__ import annotations

import pytest

from pgen.context.base import ContextStore
from pgen.context.records import Document, Interaction


class Boom(Exception):
    pass


def test_a_failing_batch_writes_nothing(store: ContextStore) -> None:
    def batch():  # type: ignore[no-untyped-def]
        yield Document(user_id="ann", doc_id="d0", text="first")
        yield Document(user_id="bob", doc_id="d0", text="second")
        raise Boom

    with pytest.raises(Boom):
        store.add(batch())
    assert not store.has_user("ann") and not store.has_user("bob")
    assert store.users() == []


def test_a_batch_naming_an_unknown_item_writes_nothing(store: ContextStore) -> None:
    with pytest.raises(Exception):  # noqa: B017 - each backend names its integrity error
        store.add(
            [
                Document(user_id="ann", doc_id="d0", text="kept?"),
                Interaction(user_id="ann", item_id="missing", action="rate"),
            ]
        )
    assert not store.has_user("ann")


def test_the_change_feed(store: ContextStore) -> None:
    store.add([Document(user_id="ann", doc_id=f"d{k}", text=f"t{k}") for k in range(3)])
    start = store.revision("ann")
    assert start.number == 3
    assert store.document_changes("ann", 0) == (store.document_hashes("ann"), [])
    store.add([Document(user_id="ann", doc_id="d1", text="edited")])
    store.add([Document(user_id="ann", doc_id="d2", text="t2")])  # unchanged: no revision
    assert store.delete_documents("ann", ["d0", "nope"]) == 1
    now = store.revision("ann")
    assert now.incarnation == start.incarnation and now.number == 5
    changed, deleted = store.document_changes("ann", start.number)
    assert set(changed) == {"d1"} and deleted == ["d0"]
    assert store.deletions_pruned("ann") == 0
    assert store.prune_deletions("ann", now.number) == 1
    assert store.deletions_pruned("ann") == now.number
    assert store.document_changes("ann", start.number) == ({"d1": changed["d1"]}, [])


def test_a_user_created_again_is_a_new_incarnation(store: ContextStore) -> None:
    store.add([Document(user_id="ann", doc_id="d0", text="t")])
    before = store.revision("ann")
    store.delete_user("ann")
    store.add([Document(user_id="ann", doc_id="d0", text="t")])
    assert store.revision("ann") != before
