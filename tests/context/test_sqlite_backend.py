"""What only the SQLite backend promises: its file's settings, its migrations from every
old version, and that forgetting survives a crash and a reader's snapshot. The one place
outside ``pgen.context.sqlite`` that opens the file directly."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pgen.context.base import StoreError
from pgen.context.sqlite.schema import MIGRATIONS, SCHEMA_VERSION, USER_TABLES
from pgen.context.sqlite.store import SQLiteStore
from tests.context.conftest import SQLiteBackend, traces
from tests.context.samples import fill

GONE = "canaryuser9b2e"


def test_new_store_is_at_schema_version_with_wal_and_foreign_keys(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "pgen.sqlite") as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert store._db.execute("PRAGMA secure_delete").fetchone()[0] == 1


def test_store_from_a_newer_pgen_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite"
    sqlite3.connect(path).execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer than this pgen"):
        SQLiteStore(path)


def test_an_older_store_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite"
    old = sqlite3.connect(path)
    old.executescript(MIGRATIONS[0] + "PRAGMA user_version=1;")
    old.execute("INSERT INTO users(user_id) VALUES ('u')")
    old.commit()
    old.close()
    with SQLiteStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION == len(MIGRATIONS)
        indexes = {
            r[0] for r in store._db.execute("SELECT name FROM sqlite_master WHERE type='index'")
        }
        assert {"documents_by_time", "output_media_by_user"} <= indexes
        assert store.has_user("u")


def test_a_file_of_schema_4_migrates_keeping_its_interactions(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        for script in MIGRATIONS[:4]:
            db.executescript(script)
        db.execute("INSERT INTO users(user_id) VALUES ('u')")
        db.execute("INSERT INTO items(item_id) VALUES ('i')")
        db.execute(
            "INSERT INTO interactions(user_id, item_id, action, rating) VALUES ('u','i','rate',4)"
        )
        db.execute("PRAGMA user_version=4")
    with SQLiteStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert [(r.item_id, r.rating) for r in store.interactions("u")] == [("i", 4.0)]


def test_delete_user_leaves_no_row_in_any_table_of_the_user(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "pgen.sqlite") as store:
        fill(store, GONE)
        fill(store, "kept")
        store.delete_user(GONE)
        for table in ("users", *USER_TABLES):
            left = store._db.execute(f"SELECT COUNT(*) FROM {table} WHERE user_id=?", (GONE,))
            assert left.fetchone()[0] == 0, table
        assert store._db.execute("SELECT COUNT(*) FROM pending_removals").fetchone()[0] == 0
        assert store._db.execute("SELECT COUNT(*) FROM output_media").fetchone()[0] == 1


def test_a_reader_holding_a_snapshot_delays_the_checkpoint_and_nothing_more(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    store = SQLiteStore(home / "pgen.sqlite")
    fill(store, GONE)
    fill(store, "kept")
    reader = sqlite3.connect(home / "pgen.sqlite")
    reader.execute("BEGIN")
    assert reader.execute("SELECT COUNT(*) FROM documents").fetchone()[0] == 6  # a snapshot
    store.checkpoint = lambda wait=0.3: SQLiteStore.checkpoint(store, wait)  # type: ignore[method-assign]
    counts = store.delete_user(GONE)
    assert counts["checkpointed"] == 0  # told, not hidden
    reader.rollback()
    reader.close()
    assert store.checkpoint()
    assert traces(SQLiteBackend(), home, GONE) == []
    store.close()


CRASH_AFTER_COMMIT = """
import os, sys
from pgen.context.sqlite import SQLiteStore
store = SQLiteStore(sys.argv[1])
# The process dies right after the delete commits, before any file is removed.
store.sweep = lambda: os._exit(9)
store.delete_user(sys.argv[2])
"""


def test_a_crash_between_commit_and_file_removal_is_finished_by_the_next_open(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    store = SQLiteStore(home / "pgen.sqlite")
    fill(store, GONE)
    fill(store, "kept")
    adapter = store.artifact_path(GONE, "lora", "default")
    store.close()
    result = subprocess.run(
        [sys.executable, "-c", CRASH_AFTER_COMMIT, str(home / "pgen.sqlite"), GONE],
        capture_output=True,
    )
    assert result.returncode == 9, result.stderr.decode()[-500:]
    assert (adapter / "adapter_config.json").is_file()  # the crash left the files...
    with sqlite3.connect(home / "pgen.sqlite") as raw:  # ...and the list of them
        assert raw.execute("SELECT COUNT(*) FROM pending_removals").fetchone()[0] == 3
        assert raw.execute("SELECT COUNT(*) FROM users WHERE user_id=?", (GONE,)).fetchone()[0] == 0
    store = SQLiteStore(home / "pgen.sqlite")  # the start-up sweep finishes the delete
    assert not adapter.exists()
    assert store.documents("kept")
    store.close()
    assert traces(SQLiteBackend(), home, GONE) == []
