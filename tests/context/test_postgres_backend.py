"""What only the Postgres backend promises: the same migrations as SQLite, its selection by
URL or table, its schema per store, statistics that hold no user data, and why delete-user
rewrites the tables (plain VACUUM leaves the deleted rows' bytes in the files)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from pgen.config import Config
from pgen.context.base import StoreError, UserNotFoundError
from pgen.context.postgres import PostgresStore
from pgen.context.postgres.schema import MIGRATIONS, SCHEMA_VERSION, SCRUBBED_TABLES
from pgen.context.sqlite.schema import MIGRATIONS as SQLITE_MIGRATIONS
from pgen.factory import build_store
from tests.context.samples import fill
from tests.postgres_server import PostgresServer

GONE = "canaryuser5c1d"


@pytest.fixture
def url(postgres_server: PostgresServer) -> str:
    return postgres_server.url(postgres_server.create_database())


def test_both_backends_have_the_same_migration_versions() -> None:
    # Adding a version (a new table) is one entry in each list: never one without the other.
    assert len(MIGRATIONS) == len(SQLITE_MIGRATIONS) == SCHEMA_VERSION


def test_a_url_or_a_table_selects_the_postgres_store(url: str, tmp_path: Path) -> None:
    by_url = build_store(Config(home=tmp_path, store=url))
    by_table = build_store(
        Config(
            home=tmp_path,
            store={
                "provider": "postgres",
                "settings": {"url": url, "schema": "other", "artifacts": str(tmp_path / "b")},
            },
        )
    )
    try:
        assert isinstance(by_url, PostgresStore) and isinstance(by_table, PostgresStore)
        assert by_url.artifacts_root == tmp_path / "artifacts"
        assert by_url.schema_version == by_table.schema_version == SCHEMA_VERSION
        # Two schemas of one database are two stores: neither sees the other's users.
        fill(by_url, "ann")
        assert by_url.has_user("ann") and not by_table.has_user("ann")
        assert by_table.users() == [] and "schema other" in by_table.location
    finally:
        by_url.close()
        by_table.close()


def test_bad_settings_fail_with_one_clear_line(url: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="postgres schema"):
        PostgresStore(url, artifacts_root=tmp_path, schema="Robert'); DROP")
    with pytest.raises(StoreError, match="cannot connect") as caught:
        PostgresStore(
            "postgresql://pgen:secret@127.0.0.1:1/none", artifacts_root=tmp_path, pool_size=1
        )
    assert "secret" not in str(caught.value)  # the password is never echoed


def test_a_store_from_a_newer_pgen_is_refused(url: str, tmp_path: Path) -> None:
    PostgresStore(url, artifacts_root=tmp_path).close()
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("UPDATE pgen.schema_version SET version = version + 1")
    with pytest.raises(StoreError, match="newer than this pgen"):
        PostgresStore(url, artifacts_root=tmp_path)


def test_statistics_hold_no_user_data(url: str, tmp_path: Path) -> None:
    with PostgresStore(url, artifacts_root=tmp_path) as store:
        for k in range(20):
            fill(store, f"user{k:02d}")
        with psycopg.connect(url, autocommit=True) as db:
            db.execute("ANALYZE")
            rows = db.execute(
                "SELECT tablename, attname, most_common_vals::text, histogram_bounds::text "
                "FROM pg_stats WHERE schemaname='pgen'"
            ).fetchall()
    # Numbers (revisions, dims, positions) have statistics; no text or bytes column does.
    assert rows and all("user" not in str(row[2:]) for row in rows)
    assert not {row[1] for row in rows} & {"user_id", "text", "path", "profile", "vector"}


def _table_files_holding(server: PostgresServer, url: str, needle: str) -> list[Path]:
    database = url.rsplit("/", 1)[1]
    files = server.files(server.database_folder(database))
    return [path for path, data in files.items() if needle.encode() in data]


def test_plain_vacuum_leaves_the_deleted_rows_bytes_so_delete_user_rewrites(
    postgres_server: PostgresServer, url: str, tmp_path: Path
) -> None:
    """Why ``scrub = "full"``: delete + plain VACUUM marks the space free, but the bytes of
    the user's rows stay in the table and index pages until reused (measured: in ~25 of
    the database's files). VACUUM FULL writes new files and truncates the old ones."""
    with PostgresStore(url, artifacts_root=tmp_path, scrub="none") as store:
        for k in range(10):
            fill(store, f"user{k:02d}")
        fill(store, GONE)
        store.delete_user(GONE)
        with psycopg.connect(url, autocommit=True) as db:
            db.execute("VACUUM")
        assert _table_files_holding(postgres_server, url, GONE)  # still readable
        store.database.vacuum_full(SCRUBBED_TABLES)  # every table that can hold a user
        assert _table_files_holding(postgres_server, url, GONE) == []


def test_delete_user_rewrites_the_tables_and_an_unknown_id_rewrites_nothing(
    url: str, tmp_path: Path
) -> None:
    def table_files() -> set[int]:
        """The files of the tables that can hold a user (``items``, the catalog, cannot)."""
        with psycopg.connect(url) as db:
            rows = db.execute(
                "SELECT relfilenode FROM pg_class c JOIN pg_namespace n ON n.oid=c.relnamespace "
                "WHERE n.nspname='pgen' AND c.relkind='r' AND c.relname = ANY(%s)",
                (list(SCRUBBED_TABLES),),
            ).fetchall()
        assert len(rows) == len(SCRUBBED_TABLES)
        return {row[0] for row in rows}

    with PostgresStore(url, artifacts_root=tmp_path) as store:
        fill(store, "kept")
        fill(store, GONE)
        before = table_files()
        with pytest.raises(UserNotFoundError):
            store.delete_user("nobody")
        assert table_files() == before  # an unknown id sent again and again costs nothing
        counts = store.delete_user(GONE)
        assert counts["scrubbed"] == 1 and counts["documents"] == 3
        assert not table_files() & before  # every table written anew
        assert len(store.documents("kept")) == 3


def test_writers_of_one_user_take_turns_and_every_change_gets_its_own_revision(
    url: str, tmp_path: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from pgen.context.records import Document

    with PostgresStore(url, artifacts_root=tmp_path) as store:

        def write(writer: int) -> None:
            for batch in range(5):
                store.add(
                    [
                        Document(user_id="ann", doc_id=f"w{writer}-{batch}-{k}", text=f"t{k}")
                        for k in range(4)
                    ]
                )

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(write, range(4)))
        assert store.revision("ann").number == 4 * 5 * 4
        changed, _ = store.document_changes("ann", 0)
        assert len(changed) == 80
        # The feed from any revision returns exactly the documents written after it.
        with psycopg.connect(url) as db:
            revisions = [r[0] for r in db.execute("SELECT revision FROM pgen.documents")]
        assert sorted(revisions) == list(range(1, 81))


def test_batches_writing_shared_items_in_opposite_orders_all_land(url: str, tmp_path: Path) -> None:
    """Row locks on the shared catalog can deadlock two batches; the aborted one runs again."""
    from concurrent.futures import ThreadPoolExecutor

    from pgen.context.records import Interaction, Item

    with PostgresStore(url, artifacts_root=tmp_path) as store:

        def write(writer: int) -> None:
            for round_ in range(8):
                items = [Item(item_id=f"i{k}", title=f"{writer}-{round_}") for k in range(30)]
                store.add(
                    [
                        *(items if writer % 2 else items[::-1]),
                        Interaction(user_id=f"u{writer}", item_id="i0", action=f"a{round_}"),
                    ]
                )

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(write, range(4)))
        assert all(len(store.interactions(f"u{w}")) == 8 for w in range(4))
