"""PostgreSQL schema of the store: the same versioned migrations as SQLite, in Postgres's
dialect, one entry per version.

Why a second list rather than one shared description: the SQLite migrations lean on
SQLite-only forms (a table rebuilt to change its primary key in version 5, ``json_each``
in 6, ``random()`` for an incarnation), and a description both dialects could be generated
from would be a small ORM to maintain for six statements a year. Instead each version is
written twice, side by side in meaning, and ``tests/context/test_postgres_backend.py``
checks that both lists have the same length: adding a version (a new table of stated
preferences, say) is one entry here and one in ``pgen.context.sqlite.schema``.

A store lives in one Postgres schema (a namespace: ``pgen`` by default, one per tenant in
the service); ``schema_version`` in it records how many migrations ran. Types follow the
SQLite store so both answer alike: times are fixed-width UTC ISO text (ordered as
instants), JSON is text, vectors are float32 bytes (``bytea``), and text compares byte by
byte (``COLLATE "C"``, as SQLite does), so ``ORDER BY`` agrees with SQLite and the indexes
serve it, whatever locale the database was created with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from pgen.context.base import StoreError

MIGRATIONS: list[str] = [
    # 1: the context, derived data and artifacts.
    """
    CREATE TABLE users (
        user_id   TEXT COLLATE "C" PRIMARY KEY,
        profile   TEXT COLLATE "C" NOT NULL DEFAULT '{}',
        revision  BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE documents (
        user_id      TEXT COLLATE "C" NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
        doc_id       TEXT COLLATE "C" NOT NULL,
        kind         TEXT COLLATE "C" NOT NULL,
        title        TEXT COLLATE "C",
        text         TEXT COLLATE "C" NOT NULL,
        time         TEXT COLLATE "C",
        fields       TEXT COLLATE "C" NOT NULL DEFAULT '{}',
        content_hash TEXT COLLATE "C" NOT NULL,
        revision     BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (user_id, doc_id)
    );
    CREATE INDEX documents_by_revision ON documents(user_id, revision);
    CREATE TABLE document_deletions (
        user_id  TEXT COLLATE "C" NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
        doc_id   TEXT COLLATE "C" NOT NULL,
        revision BIGINT NOT NULL
    );
    CREATE INDEX document_deletions_by_revision ON document_deletions(user_id, revision);
    CREATE TABLE items (
        item_id    TEXT COLLATE "C" PRIMARY KEY,
        title      TEXT COLLATE "C" NOT NULL DEFAULT '',
        text       TEXT COLLATE "C" NOT NULL DEFAULT '',
        attributes TEXT COLLATE "C" NOT NULL DEFAULT '{}',
        image_path TEXT COLLATE "C"
    );
    CREATE TABLE interactions (
        user_id TEXT COLLATE "C" NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
        item_id TEXT COLLATE "C" NOT NULL REFERENCES items(item_id),
        action  TEXT COLLATE "C" NOT NULL,
        rating  DOUBLE PRECISION,
        time    TEXT COLLATE "C" NOT NULL DEFAULT '',
        PRIMARY KEY (user_id, item_id, action, time)
    );
    CREATE INDEX interactions_by_item ON interactions(item_id);
    CREATE TABLE subjects (
        user_id     TEXT COLLATE "C" NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
        name        TEXT COLLATE "C" NOT NULL,
        class_word  TEXT COLLATE "C" NOT NULL,
        image_paths TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (user_id, name)
    );
    CREATE TABLE feedback (
        user_id     TEXT COLLATE "C" NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
        feedback_id TEXT COLLATE "C" NOT NULL,
        output_id   TEXT COLLATE "C",
        thumbs      INTEGER,
        prompt      TEXT COLLATE "C",
        chosen      TEXT COLLATE "C",
        rejected    TEXT COLLATE "C",
        time        TEXT COLLATE "C",
        PRIMARY KEY (user_id, feedback_id)
    );
    CREATE TABLE embeddings (
        user_id      TEXT COLLATE "C" NOT NULL,
        doc_id       TEXT COLLATE "C" NOT NULL,
        model_id     TEXT COLLATE "C" NOT NULL,
        dim          INTEGER NOT NULL,
        content_hash TEXT COLLATE "C" NOT NULL,
        vector       BYTEA NOT NULL,
        PRIMARY KEY (user_id, model_id, doc_id),
        FOREIGN KEY (user_id, doc_id) REFERENCES documents(user_id, doc_id) ON DELETE CASCADE
    );
    CREATE TABLE summaries (
        user_id   TEXT COLLATE "C" NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
        key       TEXT COLLATE "C" NOT NULL,
        docs_hash TEXT COLLATE "C" NOT NULL,
        text      TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (user_id, key)
    );
    CREATE TABLE outputs (
        output_id   TEXT COLLATE "C" PRIMARY KEY,
        user_id     TEXT COLLATE "C" NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
        instruction TEXT COLLATE "C" NOT NULL,
        strategy    TEXT COLLATE "C" NOT NULL,
        text        TEXT COLLATE "C" NOT NULL,
        provenance  TEXT COLLATE "C" NOT NULL,
        created     TEXT COLLATE "C" NOT NULL
    );
    CREATE INDEX outputs_by_user ON outputs(user_id);
    CREATE TABLE artifacts (
        user_id TEXT COLLATE "C" NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
        kind    TEXT COLLATE "C" NOT NULL,
        name    TEXT COLLATE "C" NOT NULL,
        path    TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (user_id, kind, name)
    );
    """,
    # 2: recency retrieval reads a user's documents newest first.
    """
    CREATE INDEX documents_by_time ON documents(user_id, time, doc_id);
    """,
    # 3: a user created again after delete-user is a new incarnation (a random id given at
    # insert by the store, which Postgres's random() cannot give as a 64-bit integer).
    """
    ALTER TABLE users ADD COLUMN incarnation BIGINT NOT NULL DEFAULT 0;
    """,
    # 4: image vectors, one per image content, view and model.
    """
    CREATE TABLE image_embeddings (
        user_id    TEXT COLLATE "C" NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
        image_key  TEXT COLLATE "C" NOT NULL,
        model_id   TEXT COLLATE "C" NOT NULL,
        dim        INTEGER NOT NULL,
        vector     BYTEA NOT NULL,
        PRIMARY KEY (user_id, model_id, image_key)
    );
    """,
    # 5: reliability: files of deleted users still to remove; repeated interactions
    # numbered by ``seq`` (Postgres changes a primary key in place, SQLite rebuilds the
    # table); the revision up to which document deletions were pruned.
    """
    CREATE TABLE pending_removals (
        path TEXT COLLATE "C" PRIMARY KEY
    );
    ALTER TABLE users ADD COLUMN deletions_pruned BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE interactions ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE interactions DROP CONSTRAINT interactions_pkey;
    ALTER TABLE interactions ADD PRIMARY KEY (user_id, item_id, action, time, seq);
    """,
    # 6: outputs of every modality, and their media files in order, scoped by user.
    """
    ALTER TABLE outputs ADD COLUMN modality TEXT COLLATE "C" NOT NULL DEFAULT 'text';
    UPDATE outputs SET modality='image'
        WHERE jsonb_typeof(provenance::jsonb -> 'images') = 'array';
    CREATE TABLE output_media (
        output_id TEXT COLLATE "C" NOT NULL REFERENCES outputs(output_id) ON DELETE CASCADE,
        user_id   TEXT COLLATE "C" NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
        position  INTEGER NOT NULL,
        kind      TEXT COLLATE "C" NOT NULL,
        path      TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (output_id, position)
    );
    CREATE INDEX output_media_by_user ON output_media(user_id);
    INSERT INTO output_media(output_id, user_id, position, kind, path)
        SELECT o.output_id, o.user_id, m.position - 1, 'image', m.path
        FROM outputs o,
             jsonb_array_elements_text(o.provenance::jsonb -> 'images')
                 WITH ORDINALITY AS m(path, position)
        WHERE jsonb_typeof(o.provenance::jsonb -> 'images') = 'array';
    """,
    # 7: the user's stated preferences ("no nightlife"), each with the turn it was said in.
    """
    CREATE TABLE preferences (
        user_id       TEXT COLLATE "C" NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
        preference_id TEXT COLLATE "C" NOT NULL,
        text          TEXT NOT NULL,
        origin        TEXT COLLATE "C" NOT NULL,
        source        TEXT COLLATE "C",
        span_start    INTEGER,
        span_end      INTEGER,
        time          TEXT COLLATE "C",
        PRIMARY KEY (user_id, preference_id)
    );
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)

# Every table holding rows of one user besides ``users`` (as in SQLite): all go with the user.
USER_TABLES = (
    "documents",
    "document_deletions",
    "interactions",
    "subjects",
    "feedback",
    "embeddings",
    "image_embeddings",
    "summaries",
    "outputs",
    "output_media",
    "artifacts",
    "preferences",
)
# What delete-user rewrites (VACUUM FULL) so no dead copy of the user's rows stays in a
# table file: the user tables, ``users`` itself and ``pending_removals`` (paths name users).
SCRUBBED_TABLES = ("users", *USER_TABLES, "pending_removals")


def current_version(db: psycopg.Connection[Any], schema: str) -> int:
    """How many migrations ran in ``schema`` (0: none, or no such schema yet)."""
    cursor = db.cursor(row_factory=tuple_row)  # whatever rows the connection makes
    exists = cursor.execute("SELECT to_regclass(%s)", (f"{schema}.schema_version",)).fetchone()
    if exists is None or exists[0] is None:
        return 0
    row = cursor.execute(
        sql.SQL("SELECT version FROM {}.schema_version").format(sql.Identifier(schema))
    ).fetchone()
    return int(row[0]) if row else 0


def apply_migrations(
    db: psycopg.Connection[Any],
    schema: str,
    current: int,
    target: int = SCHEMA_VERSION,
    migrations: Sequence[str] = MIGRATIONS,
) -> None:
    """Apply ``migrations`` ``current`` .. ``target`` inside the caller's transaction (with
    ``search_path`` at ``schema``) and record the version. ``target`` below the newest
    builds an older store (tests of upgrading in place). ``migrations``: the store's by
    default; the service's own schemas (jobs, keys) pass theirs."""
    name = sql.Identifier(schema)
    db.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(name))
    db.execute(sql.SQL("SET LOCAL search_path TO {}").format(name))
    for script in migrations[current:target]:
        db.execute(script.encode())  # several statements: the simple query protocol
    db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    db.execute("DELETE FROM schema_version")
    db.execute("INSERT INTO schema_version(version) VALUES (%s)", (target,))
    hide_from_statistics(db, schema)


def migrate(
    db: psycopg.Connection[Any], schema: str, migrations: Sequence[str], *, where: str
) -> None:
    """Bring ``schema`` to version ``len(migrations)`` inside the caller's transaction.
    Of many processes opening a new database at once, one migrates; the others wait on
    this lock and find the work done. ``where``: the schema, named in the error when the
    database is newer than this pgen."""
    db.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"pgen:{schema}",))
    current = current_version(db, schema)
    target = len(migrations)
    if current > target:
        raise StoreError(
            f"{where} has schema version {current}, newer than this pgen ({target}); upgrade pgen"
        )
    if current < target:
        apply_migrations(db, schema, current, target, migrations)


def hide_from_statistics(db: psycopg.Connection[Any], schema: str) -> None:
    """Collect no planner statistics on columns that can hold a user's data.

    ANALYZE (autovacuum runs it on its own) copies a column's most common values and
    histogram bounds into ``pg_statistic``: user ids, document text, paths. Those copies
    would outlive delete-user in a catalog the store cannot rewrite. Every query here
    is by key through an index, so the planner does not need them. Run after every
    migration: a column a later version adds is covered by the same rule."""
    columns = (
        db.cursor(row_factory=tuple_row)
        .execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema=%s AND data_type IN ('text', 'bytea')",
            (schema,),
        )
        .fetchall()
    )
    for table, column in columns:
        db.execute(
            sql.SQL("ALTER TABLE {}.{} ALTER COLUMN {} SET STATISTICS 0").format(
                sql.Identifier(schema), sql.Identifier(table), sql.Identifier(column)
            )
        )
