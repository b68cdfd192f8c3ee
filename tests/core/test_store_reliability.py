"""Store hygiene: private files, times compared as instants, repeated events kept,
migrations of older files, and pruned deletion records that never mislead an index."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from pgen.context import Document
from pgen.context.ingest import ingest
from pgen.context.sqlite import SQLiteStore
from pgen.usermodel import retrievers as retrievers_module
from pgen.usermodel.bm25 import Bm25Index
from pgen.usermodel.retrievers import Bm25Retriever


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_store_file_is_private_and_new_folders_too(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "new" / "deeper" / "pgen.sqlite")
    store.add([Document(user_id="u", doc_id="d", text="t")])
    adapter = store.artifact_path("u", "lora", "x")
    assert _mode(store.path) == 0o600
    assert _mode(Path(f"{store.path}-wal")) == 0o600
    assert _mode(tmp_path / "new") == 0o700 and _mode(tmp_path / "new" / "deeper") == 0o700
    assert _mode(adapter) == 0o700 and _mode(store.artifacts_root) == 0o700
    assert _mode(store.shared_path("recommenders", "bpr")) == 0o700
    store.close()


def test_recency_compares_instants_across_time_zones(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    times = {
        "east": "2024-01-01T10:00:00+05:00",  # 05:00 UTC
        "utc": "2024-01-01T06:00:00Z",  # 06:00 UTC: the newest
        "naive": "2024-01-01T04:00:00",  # taken as UTC: the oldest
        "west": "2023-12-31T23:30:00-05:30",  # 05:00 UTC as well: a tie, broken by id
    }
    lines = [
        {"type": "document", "user_id": "u", "doc_id": d, "text": "t", "time": t}
        for d, t in times.items()
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    with SQLiteStore(tmp_path / "s.sqlite") as store:
        ingest(store, path)
        assert store.recent_doc_ids("u", 4) == ["utc", "west", "east", "naive"]
        assert all(
            d.time is not None and d.time.utcoffset() is not None for d in store.documents("u")
        )


def test_repeated_undated_interactions_stay_separate_and_reingest_writes_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.jsonl"
    item = {"type": "item", "item_id": "song"}
    play = {"type": "interaction", "user_id": "u", "item_id": "song", "action": "play"}
    path.write_text("\n".join(json.dumps(r) for r in [item, play, play, play]) + "\n")
    with SQLiteStore(tmp_path / "s.sqlite") as store:
        ingest(store, path)
        assert len(store.interactions("u")) == 3
        assert ingest(store, path).written == 0
        assert len(store.interactions("u")) == 3


def test_pruned_deletions_make_an_older_index_rebuild_not_miss_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retrievers_module, "SNAPSHOT_AFTER", 3)
    path = tmp_path / "s.sqlite"
    texts = ["red apple", "green apple", "apple pie", "pear tart", "apple cider"]
    first, second = SQLiteStore(path), SQLiteStore(path)  # two processes' stores
    first.add([Document(user_id="u", doc_id=f"d{i}", text=t) for i, t in enumerate(texts)])
    old = Bm25Retriever(first)
    assert len(old.retrieve("u", "apple", 10)) == 4  # indexed before the deletions

    second.delete_documents("u", ["d0", "d2"])
    second.add([Document(user_id="u", doc_id=f"n{i}", text=f"apple {i}") for i in range(3)])
    fresh = Bm25Retriever(second)
    fresh.retrieve("u", "apple", 10)  # 5 changes: saves a snapshot, prunes deletions
    assert second.document_changes("u", 0)[1] == []  # the deletions' records are gone
    assert second.deletions_pruned("u") > 0

    found = [hit.doc_id for hit in old.retrieve("u", "apple", 10)]
    reference = Bm25Index()
    reference.add_many([(d.doc_id, d.text) for d in second.documents("u")])
    assert sorted(found) == sorted(doc for doc, _ in reference.search("apple", 10))
    assert "d0" not in found and "d2" not in found
    first.close()
    second.close()


def test_snapshot_files_of_concurrent_savers_never_collide(tmp_path: Path) -> None:
    # Every save writes its own temporary file: none is left behind, one snapshot stays.
    with SQLiteStore(tmp_path / "s.sqlite") as store:
        store.add([Document(user_id="u", doc_id=f"d{i}", text=f"word {i}") for i in range(5)])
        retriever = Bm25Retriever(store)
        retriever.retrieve("u", "word", 3)
        entry = retriever._entries["u"]
        for _ in range(3):
            retriever._save("u", entry)
        folder = store.artifacts("u")[("index", "bm25")]
        assert sorted(p.name for p in folder.iterdir()) == ["index.npz"]
